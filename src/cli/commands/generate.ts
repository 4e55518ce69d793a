import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { z } from "zod";
import { fitToContext } from "../../model/context.js";
import type { Sample } from "../../model/generate.js";
import { readCheckpointConfig } from "../../model/lora.js";
import { generateMixture } from "../../model/mixture.js";
import { CausalLM } from "../../model/model.js";
import { loadTokenizer, type Tokenizer } from "../../model/tokenizer.js";
import { mixtureIterates } from "../../pipeline/paths.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { readInputRecords, toJsonl } from "../../util/jsonl.js";
import { intFlag, MAX_SEED, numberFlag } from "../flags.js";

interface GenerateFlags {
  model?: string;
  mixture?: string;
  adapter?: string;
  input: string;
  output: string;
  samples: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  stop?: string[];
  chatTemplate: boolean;
  json?: boolean;
  truncate?: "left";
}

const messageSchema = z.object({ role: z.string(), content: z.string() });
const promptLineSchema = z
  .object({
    id: z.union([z.string(), z.number()]).optional(),
    prompt: z.string().optional(),
    messages: z.array(messageSchema).min(1).optional(),
  })
  .refine((line) => (line.prompt === undefined) !== (line.messages === undefined), {
    message: 'each line needs exactly one of "prompt" (a string) or "messages" ([{role, content}])',
  });
type PromptLine = z.infer<typeof promptLineSchema>;

/** Token ids of one input line: the chat template applied when the tokenizer has one (and it is wanted). */
function promptIds(line: PromptLine, tokenizer: Tokenizer, useTemplate: boolean, where: string): number[] {
  const template = useTemplate && tokenizer.chatTemplate !== undefined;
  if (line.messages !== undefined) {
    if (!template)
      throw new DnoError(`${where}: "messages" needs a chat template (the model's tokenizer has none)`);
    const text = tokenizer.applyChatTemplate(line.messages, { addGenerationPrompt: true });
    return tokenizer.encode(text, { addSpecialTokens: false });
  }
  if (!template) return tokenizer.encode(line.prompt!);
  const text = tokenizer.applyChatTemplate([{ role: "user", content: line.prompt! }], {
    addGenerationPrompt: true,
  });
  return tokenizer.encode(text, { addSpecialTokens: false });
}

async function runGenerate(flags: GenerateFlags, explicitMaxNewTokens: boolean): Promise<void> {
  const records = readInputRecords(flags.input, promptLineSchema, "prompts", (l) => l.id);
  const lines = records.map((r) => r.value);
  if ((flags.model === undefined) === (flags.mixture === undefined))
    throw new DnoError("dno generate: give one of --model DIR and --mixture RUN_DIR");
  if (flags.mixture !== undefined && flags.adapter !== undefined)
    throw new DnoError("dno generate: --adapter applies to --model, not to --mixture");
  const dirs = flags.mixture !== undefined ? mixtureIterates(flags.mixture) : [flags.model!];
  const tokenizer = loadTokenizer(dirs[0]!);
  const { ids: prompts, maxNewTokens } = fitToContext(
    records.map(({ line, value }) => {
      const where = `${flags.input}:${line}`;
      return { where, ids: promptIds(value, tokenizer, flags.chatTemplate, where) };
    }),
    { value: flags.maxNewTokens, explicit: explicitMaxNewTokens, name: "--max-new-tokens" },
    readCheckpointConfig(dirs[0]!).maxPositionEmbeddings,
    flags.truncate,
  );
  const eos = [...new Set([...tokenizer.eosTokenIds, ...readCheckpointConfig(dirs[0]!).eosTokenIds])];
  const total = prompts.length * flags.samples;
  const bar = new SingleBar({
    format: "sampling [{bar}] {value}/{total} samples | {eta_formatted} left",
    stream: process.stderr,
    hideCursor: true,
  });
  const started = performance.now();
  bar.start(total, 0);
  let samples: (Sample & { member?: number })[][];
  try {
    const options = {
      samplesPerPrompt: flags.samples,
      temperature: flags.temperature,
      topP: flags.topP,
      topK: flags.topK,
      maxNewTokens,
      eosTokenIds: eos,
      seed: flags.seed,
      stopStrings: flags.stop,
      tokenizer,
      onProgress: (done: number) => bar.update(done),
    };
    samples =
      flags.mixture !== undefined
        ? await generateMixture(dirs.length, (m) => CausalLM.load(dirs[m]!), prompts, options)
        : await CausalLM.load(dirs[0]!, { adapter: flags.adapter }).generate(prompts, options);
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  samples.forEach((ss, p) => {
    const bad = ss.findIndex((x) => !Number.isFinite(x.logprob));
    if (bad >= 0) {
      throw new DnoError(
        `${flags.input}:${records[p]!.line}: sample ${bad} has log-prob ${ss[bad]!.logprob}; the model's outputs are not finite`,
      );
    }
  });
  const rows = lines.map((line, p) => ({
    id: line.id ?? p,
    ...(line.prompt !== undefined ? { prompt: line.prompt } : { messages: line.messages }),
    responses: samples[p]!.map((s) => ({
      text: s.text,
      tokens: s.tokens,
      logprob: s.logprob,
      finish_reason: s.finishReason,
      // The mixture's iterate t (pi_t) this response was drawn from; logprob is under it.
      ...(s.member !== undefined && { iterate: s.member + 1 }),
    })),
  }));
  writeFileAtomic(flags.output, toJsonl(rows));
  const newTokens = samples.flat().reduce((n, s) => n + s.tokens.length, 0);
  const summary = {
    prompts: prompts.length,
    samples: total,
    new_tokens: newTokens,
    seconds: Number(seconds.toFixed(3)),
    tokens_per_second: Number((newTokens / seconds).toFixed(1)),
    output: flags.output,
  };
  process.stderr.write(
    `sampled ${total} responses (${newTokens} tokens) for ${prompts.length} prompts in ${summary.seconds} s ` +
      `(${summary.tokens_per_second} tokens/s) -> ${flags.output}\n`,
  );
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
}

export function register(program: Command): void {
  program
    .command("generate")
    .description("sample K responses per prompt from a checkpoint (KV cache, batched), writing JSONL")
    .option("--model <dir>", "Hugging Face model directory (config.json, safetensors, tokenizer.json)")
    .option(
      "--mixture <run-dir>",
      "sample from the uniform mixture of a run's iterates pi_1..pi_T instead (each response from a uniformly drawn iterate)",
    )
    .option(
      "--adapter <dir>",
      "a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied to the model",
    )
    .requiredOption(
      "--input <file>",
      'JSONL lines {"id"?, "prompt"} or {"id"?, "messages": [{role, content}]}',
    )
    .requiredOption(
      "--output <file>",
      "JSONL lines {id, prompt, responses: [{text, tokens, logprob, finish_reason}]}",
    )
    .option("-k, --samples <n>", "samples per prompt", intFlag("--samples", 1, 4096), 1)
    .option("--temperature <t>", "0 = greedy", numberFlag("--temperature", 0, 100), 0.7)
    .option("--top-p <p>", "nucleus mass, 1 = off", numberFlag("--top-p", 0, 1, { exclusiveMin: true }), 1)
    .option("--top-k <k>", "keep the k likeliest tokens, 0 = off", intFlag("--top-k", 0, 1 << 24), 0)
    .option(
      "--max-new-tokens <n>",
      "tokens per response at most",
      intFlag("--max-new-tokens", 1, 1 << 20),
      256,
    )
    .option("--seed <n>", "same seed, same samples", intFlag("--seed", 0, MAX_SEED), 0)
    .option("--stop <strings...>", "stop strings: a response ends before the first one")
    .option("--no-chat-template", "feed prompts as plain text even when the tokenizer has a chat template")
    .addOption(
      new Option(
        "--truncate <side>",
        "cut prompts longer than the context allows (with --max-new-tokens) from this side, instead of an error",
      ).choices(["left"]),
    )
    .option("--json", "also print the summary as one JSON object on stdout")
    .action(async (flags: GenerateFlags, command: Command) =>
      runGenerate(flags, command.getOptionValueSource("maxNewTokens") !== "default"),
    );
}
