/**
 * Batched sampling throughput: 32 prompts x K = 5 samples, 64 new tokens each, temperature 0.7, on the
 * engine benchmark's configs S and M (random weights, float32, beside llama.cpp on an F32 GGUF) and L
 * (SmolLM2-135M's shapes, vocab 49152: the engine in bf16 where the CPU has bf16 hardware, beside
 * llama.cpp on an F16 GGUF of the same weights), with the same prompts and sample count, in the same run.
 * llama.cpp is node-llama-cpp's prebuilt CPU binary; it decodes all samples as parallel sequences of one
 * context (its batched path; each sample prefills its own prompt). Tokens/s counts generated tokens over
 * wall time, prefill included.
 *
 * serve_vs_offline: config M behind `dno serve` (a child process), 32 concurrent clients (the official
 * `openai` client), each sending SERVE_ROUNDS requests one after another (its prompts as token ids,
 * n = 5, max_tokens 64), against the same prompts sampled offline by `generate` (what `dno generate`
 * runs) in this process; generated tokens over wall time, the better of two runs each.
 * Last line: {"bench":"sample","S_vs_llamacpp":R,"M_vs_llamacpp":R,"L_vs_llamacpp":R,"serve_vs_offline":R}.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, type Token } from "node-llama-cpp";
import OpenAI from "openai";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { exportGguf, ggufSource } from "../src/model/gguf.js";
import { CausalLM } from "../src/model/model.js";
import {
  byteTokenizerFiles,
  saveTokenizer,
  type Tokenizer,
  tokenizerFromFiles,
} from "../src/model/tokenizer.js";
import { BENCH_CONFIGS } from "./configs.js";

const PROMPTS = 32;
const K = 5;
const NEW_TOKENS = 64;
const TEMPERATURE = 0.7;
const SERVE_CLIENTS = 32;
const SERVE_ROUNDS = 3;
const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));

const CONFIGS = { S: BENCH_CONFIGS.S, M: BENCH_CONFIGS.M, L: BENCH_CONFIGS.L };
/** L runs in 16-bit: the engine in bf16 (where the CPU has it), llama.cpp on F16 weights. */
const HALF: ReadonlySet<string> = new Set(["L"]);

/** The 256 byte tokens alone (no specials), so the tokenizer fits the benchmark's vocab of 256. */
function bytesOnlyTokenizer() {
  const files = byteTokenizerFiles();
  files.tokenizerJson.added_tokens = [];
  files.tokenizerJson.post_processor = null;
  files.tokenizerConfig = { clean_up_tokenization_spaces: false };
  return tokenizerFromFiles(files);
}

function prompts(n = PROMPTS): number[][] {
  const rng = new Rng(7);
  return Array.from({ length: n }, () => Array.from({ length: 16 + rng.int(33) }, () => 32 + rng.int(95)));
}

async function ours(model: CausalLM, batch: number[][]): Promise<number> {
  const started = performance.now();
  const out = await model.generate(batch, {
    samplesPerPrompt: K,
    temperature: TEMPERATURE,
    maxNewTokens: NEW_TOKENS,
    eosTokenIds: [],
    seed: 1,
  });
  const seconds = (performance.now() - started) / 1000;
  const tokens = out.flat().reduce((n, s) => n + s.tokens.length, 0);
  return tokens / seconds;
}

async function llamaCpp(
  ggufPath: string,
  batch: number[][],
  threads: number,
  newTokens: number,
): Promise<number> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: ggufPath });
  const longest = Math.max(...batch.map((p) => p.length)) + newTokens;
  const context = await model.createContext({
    sequences: batch.length * K,
    contextSize: longest, // per sequence
    batchSize: 512,
    threads,
  });
  try {
    const started = performance.now();
    let tokens = 0;
    await Promise.all(
      batch.flatMap((prompt, p) =>
        Array.from({ length: K }, async (_, k) => {
          const sequence = context.getSequence();
          const stream = sequence.evaluate(prompt as Token[], { temperature: TEMPERATURE, seed: p * K + k });
          for (let t = 0; t < newTokens; t++) {
            const next = await stream.next();
            if (next.done) break;
            tokens++;
          }
          await stream.return();
        }),
      ),
    );
    return tokens / ((performance.now() - started) / 1000);
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/** Tokens/s of 32 concurrent clients against `dno serve` on the model in `dir`, each sending its rounds in turn. */
async function served(dir: string, batch: number[][]): Promise<number> {
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--model", dir, "--port", "0", "--served-model-name", "bench"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let err = "";
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /at (http:\/\/\S+\/v1)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`dno serve exited ${code}: ${err}`)));
    });
    const client = new OpenAI({ baseURL: url, apiKey: "unused", maxRetries: 0, timeout: 600_000 });
    const started = performance.now();
    const counts = await Promise.all(
      Array.from({ length: SERVE_CLIENTS }, async (_, c) => {
        let tokens = 0;
        for (let r = 0; r < SERVE_ROUNDS; r++) {
          const prompt = batch[r * SERVE_CLIENTS + c]!;
          const out = await client.completions.create({
            model: "bench",
            prompt,
            n: K,
            max_tokens: NEW_TOKENS,
            temperature: TEMPERATURE,
            seed: r * SERVE_CLIENTS + c,
          });
          tokens += out.usage!.completion_tokens;
        }
        return tokens;
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return counts.reduce((a, b) => a + b, 0) / seconds;
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

async function serveVsOffline(dir: string, tokenizer: Tokenizer): Promise<number> {
  const config = parseConfig({ max_position_embeddings: 256, ...CONFIGS.M }, "config M");
  const model = CausalLM.init(config, 1);
  const modelDir = join(dir, "served");
  model.save(modelDir);
  saveTokenizer(tokenizer, modelDir);
  const batch = prompts(SERVE_CLIENTS * SERVE_ROUNDS);
  await ours(model, batch.slice(0, 2));
  let offline = 0;
  let serve = 0;
  for (let i = 0; i < 2; i++) {
    offline = Math.max(offline, await ours(model, batch));
    serve = Math.max(serve, await served(modelDir, batch));
  }
  console.log(
    JSON.stringify({
      config: "M",
      clients: SERVE_CLIENTS,
      requests_per_client: SERVE_ROUNDS,
      n: K,
      max_tokens: NEW_TOKENS,
      offline_tokens_per_s: Math.round(offline),
      serve_tokens_per_s: Math.round(serve),
    }),
  );
  return serve / offline;
}

async function main(): Promise<void> {
  const threads = engine().numThreads();
  const dir = mkdtempSync(join(tmpdir(), "dno-bench-sample-"));
  const batch = prompts();
  const tokenizer = bytesOnlyTokenizer();
  const ratios: Record<string, number> = {};
  try {
    for (const [name, shape] of Object.entries(CONFIGS)) {
      const config = parseConfig({ max_position_embeddings: 256, ...shape }, `config ${name}`);
      const model = CausalLM.init(config, 1);
      const half = HALF.has(name);
      model.precision = half && engine().bgemmHasHardware() ? "bf16" : "fp32";
      const gguf = join(dir, `${name}.gguf`);
      exportGguf(gguf, ggufSource(model.config, model.params), tokenizer, { dtype: half ? "f16" : "f32" });
      await ours(model, batch.slice(0, 2)); // warm-up: pool threads, page-in
      const dnoRate = await ours(model, batch);
      // ggml's threads spin while waiting for each other: on a loaded machine one thread can beat several.
      // llama.cpp runs with whichever of 1 or `threads` threads is faster on a short trial.
      let llamaThreads = 1;
      if (threads > 1) {
        const trial = batch.slice(0, 4);
        const one = await llamaCpp(gguf, trial, 1, 8);
        const many = await llamaCpp(gguf, trial, threads, 8);
        llamaThreads = many > one ? threads : 1;
      }
      const llamaRate = await llamaCpp(gguf, batch, llamaThreads, NEW_TOKENS);
      ratios[name] = dnoRate / llamaRate;
      console.log(
        JSON.stringify({
          config: name,
          prompts: PROMPTS,
          samples_per_prompt: K,
          new_tokens: NEW_TOKENS,
          threads,
          dno_precision: model.precision,
          llamacpp_weights: half ? "F16" : "F32",
          llamacpp_threads: llamaThreads,
          dno_tokens_per_s: Math.round(dnoRate),
          llamacpp_tokens_per_s: Math.round(llamaRate),
        }),
      );
    }
    ratios.serve = await serveVsOffline(dir, tokenizer);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const r = (x: number | undefined) => Number((x ?? 0).toFixed(2));
  console.log(
    JSON.stringify({
      bench: "sample",
      S_vs_llamacpp: r(ratios.S),
      M_vs_llamacpp: r(ratios.M),
      L_vs_llamacpp: r(ratios.L),
      serve_vs_offline: r(ratios.serve),
    }),
  );
}

await main();
