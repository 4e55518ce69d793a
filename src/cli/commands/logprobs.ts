import type { Command } from "commander";
import { z } from "zod";
import { engine } from "../../engine/index.js";
import { CausalLM } from "../../model/model.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { readJsonFile } from "../../util/files.js";
import { describeZodError } from "../../util/zod.js";

const inputSchema = z.object({ sequences: z.array(z.array(z.number().int().nonnegative()).min(1)) });

interface LogprobsOptions {
  model: string;
  adapter?: string;
  input: string;
  out: string;
  threads?: string;
}

/**
 * `dno logprobs`: the reference tool's `logprobs` (../shared/reference/torch_llama.py) on the native
 * engine, with the same input and output files, so the two can be compared directly.
 */
export function register(program: Command): void {
  program
    .command("logprobs")
    .description(
      "log p(token | prefix) for every token after the first, and each sequence's last-position logits",
    )
    .requiredOption("--model <dir>", "model folder: config.json and model.safetensors (or shards)")
    .option(
      "--adapter <dir>",
      "a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied to the model",
    )
    .requiredOption("--input <file>", 'JSON {"sequences": [[1, 5, 9], [3, 4]]}')
    .requiredOption("--out <file>", 'JSON {"dtype", "token_logprobs": [[...]], "last_logits": [[...]]}')
    .option("--threads <n>", "engine threads (default: all cores)")
    .action((opts: LogprobsOptions) => {
      const t0 = performance.now();
      if (opts.threads !== undefined) {
        const n = Number(opts.threads);
        if (!Number.isInteger(n) || n < 1)
          throw new DnoError(`--threads: expected a positive integer, got ${opts.threads}`);
        engine().setNumThreads(n);
      }
      const sequences = readInput(opts.input);
      const model = CausalLM.load(opts.model, { adapter: opts.adapter });
      const V = model.config.vocabSize;
      const context = model.config.maxPositionEmbeddings;
      sequences.forEach((s, i) => {
        if (s.length > context) {
          throw new DnoError(
            `${opts.input}: sequences[${i}]: ${s.length} tokens, more than the model's context of ${context} (max_position_embeddings)`,
          );
        }
        const j = s.findIndex((t) => t >= V);
        if (j >= 0) {
          throw new DnoError(
            `${opts.input}: sequences[${i}][${j}]: token ${s[j]} is outside the model's vocabulary [0, ${V})`,
          );
        }
      });
      const { tokenLogprobs, lastLogits } = model.tokenLogprobs(sequences);
      tokenLogprobs.forEach((lp, i) => {
        const j = lp.findIndex((x) => !Number.isFinite(x));
        if (j >= 0) {
          throw new DnoError(
            `${opts.input}: sequences[${i}][${j + 1}]: log-prob ${lp[j]}; the model's outputs are not finite`,
          );
        }
      });
      const lps = tokenLogprobs.map((a) => Array.from(a));
      writeFileAtomic(
        opts.out,
        JSON.stringify({
          dtype: "float32",
          token_logprobs: lps,
          last_logits: lastLogits.map((a) => Array.from(a)),
        }),
      );
      const scored = lps.reduce((n, a) => n + a.length, 0);
      const total = lps.reduce((s, a) => s + a.reduce((x, y) => x + y, 0), 0);
      const summary = {
        cmd: "logprobs",
        sequences: sequences.length,
        scored_tokens: scored,
        sum_logprob: total,
        mean_nll: -total / Math.max(scored, 1),
        dtype: "float32",
        out: opts.out,
        seconds: Math.round(performance.now() - t0) / 1000,
      };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}

function readInput(path: string): number[][] {
  const parsed = inputSchema.safeParse(readJsonFile(path));
  if (!parsed.success) throw new DnoError(`${path}: ${describeZodError(parsed.error)}`);
  return parsed.data.sequences;
}
