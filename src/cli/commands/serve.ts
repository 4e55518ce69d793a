import { basename, resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { CausalLM } from "../../model/model.js";
import { loadTokenizer } from "../../model/tokenizer.js";
import { serve } from "../../serve/server.js";

interface ServeFlags {
  model: string;
  adapter?: string;
  host: string;
  port: number;
  servedModelName?: string;
  maxConcurrentRequests: number;
  maxTokensInFlight: number;
  defaultMaxTokens: number;
}

function integer(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    }
    return n;
  };
}

async function runServe(flags: ServeFlags): Promise<void> {
  const model = CausalLM.load(flags.model, { adapter: flags.adapter });
  const tokenizer = loadTokenizer(flags.model);
  const modelName = flags.servedModelName ?? basename(resolve(flags.model));
  const server = await serve({
    model,
    tokenizer,
    modelName,
    host: flags.host,
    port: flags.port,
    maxConcurrentRequests: flags.maxConcurrentRequests,
    maxTokensInFlight: flags.maxTokensInFlight,
    defaultMaxTokens: flags.defaultMaxTokens,
  });
  process.stderr.write(
    `dno serve: ${modelName} at ${server.url} (SIGTERM or Ctrl-C finishes the requests in flight, then exits)\n`,
  );
  await new Promise<void>((done) => {
    let stopping = false;
    // A process group's SIGTERM may arrive more than once (a wrapper forwarding it): drain once.
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`dno serve: ${signal}: finishing the requests in flight\n`);
      void server.close().then(done);
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
  process.stderr.write("dno serve: stopped\n");
}

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "an OpenAI-compatible server on the native engine (/v1/models, /v1/completions, /v1/chat/completions), continuously batched",
    )
    .requiredOption(
      "--model <dir>",
      "Hugging Face model directory (config.json, safetensors, tokenizer.json)",
    )
    .option("--adapter <dir>", "a PEFT LoRA adapter directory applied to the model (unmerged)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0: any free one)", integer("--port", 0), 8000)
    .option("--served-model-name <name>", "the model id clients send (default: the directory's name)")
    .option(
      "--max-concurrent-requests <n>",
      "requests answered at once; more get 429",
      integer("--max-concurrent-requests", 1),
      256,
    )
    .option(
      "--max-tokens-in-flight <n>",
      "prompt + n x max_tokens summed over requests in flight; more get 429",
      integer("--max-tokens-in-flight", 1),
      1_000_000,
    )
    .option(
      "--default-max-tokens <n>",
      "max_tokens of a request that gives none",
      integer("--default-max-tokens", 1),
      256,
    )
    .action(async (flags: ServeFlags) => runServe(flags));
}
