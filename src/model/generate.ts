/**
 * Batched sampling from a Llama-family model with a KV cache (native/generate.cpp): many prompts x K
 * samples, each prompt prefilled once and shared by its K samples. A sample's randomness comes from its
 * own seed, derived from (seed, prompt index, sample index), so the same seed gives the same samples
 * whatever the batch: how prompts are grouped into native batches never changes a result.
 */
import { deriveSeed } from "../core/rng.js";
import type { NativeConfig, NativeLoraSpec } from "../engine/index.js";
import {
  createSampler,
  FINISH_EOS,
  FINISH_LENGTH,
  FINISH_RUNNING,
  FINISH_STOPPED,
} from "../engine/sampler.js";
import { DnoError } from "../util/errors.js";
import { decodeResponse, type Tokenizer } from "./tokenizer.js";

/** What sampling needs of a model: its shape and its flat parameter buffer (native/model.h layout). */
export interface SamplingModel {
  readonly config: NativeConfig;
  readonly params: Float32Array;
  /** a LoRA adapter sampled with unmerged */
  readonly adapter?: { spec: NativeLoraSpec; params: Float32Array } | null;
}

export interface GenerateOptions {
  samplesPerPrompt: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  maxNewTokens: number;
  /** Generation ends when one of these is drawn (it is not part of the sample). */
  eosTokenIds: number[];
  seed: number;
  /** The index of prompts[0] in a larger set drawn in parts: seeds follow the index in the whole set. */
  firstPromptIndex?: number;
  /** Generation ends when the text contains one of these (needs `tokenizer`; the text stops before it). */
  stopStrings?: string[];
  /** Decodes each sample's text as a continuation of its prompt (and finds stop strings). */
  tokenizer?: Tokenizer;
  /** Called as samples finish: (finished, total). */
  onProgress?: (finished: number, total: number) => void;
  /** Largest number of samples decoded together (memory bound); results do not depend on it. */
  maxBatchSamples?: number;
  /** Also return the logits each token was drawn from (for verification; vocab floats per token). */
  returnLogits?: boolean;
}

export type FinishReason = "eos" | "length" | "stop";

export interface Sample {
  tokens: number[];
  /** log pi(tokens | prompt) under the model itself (temperature 1, no top-k / top-p). */
  logprob: number;
  finishReason: FinishReason;
  /** Decoded tokens as a continuation of the prompt (prompt text + text = the decoded whole; when a
   * tokenizer was given), cut before a stop string. */
  text?: string;
  /** Per token, the logits it was drawn from (only with returnLogits). */
  logits?: Float32Array[];
}

const STEPS_PER_CHECK = 4;
const KV_BUDGET_BYTES = 2 * 1024 ** 3;

/** Samples `samplesPerPrompt` continuations of every prompt; result[p][k] is prompt p's sample k. */
export async function generate(
  model: SamplingModel,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<Sample[][]> {
  const o = validate(model.config, prompts, options);
  const K = o.samplesPerPrompt;
  const results: Sample[][] = prompts.map(() => []);
  const total = prompts.length * K;
  let finished = 0;
  for (const batch of batches(model.config, prompts, o)) {
    const samples = await generateBatch(model, prompts, batch, o, (n) => {
      finished += n;
      o.onProgress?.(finished, total);
    });
    batch.forEach((p, i) => {
      results[p] = samples.slice(i * K, (i + 1) * K);
    });
  }
  return results;
}

type Resolved = GenerateOptions & { topP: number; topK: number; stopStrings: string[] };

function validate(
  config: NativeConfig,
  prompts: readonly (readonly number[])[],
  o: GenerateOptions,
): Resolved {
  const bad = (what: string) => {
    throw new DnoError(`generate: ${what}`);
  };
  if (!Number.isInteger(o.samplesPerPrompt) || o.samplesPerPrompt < 1) bad("samplesPerPrompt must be >= 1");
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) bad("maxNewTokens must be >= 1");
  if (!(o.temperature >= 0)) bad("temperature must be >= 0");
  const topP = o.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) bad("topP must be in (0, 1]");
  const topK = o.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) bad("topK must be an integer >= 0");
  const stopStrings = (o.stopStrings ?? []).filter((s) => s !== "");
  if (stopStrings.length > 0 && o.tokenizer === undefined) bad("stopStrings need a tokenizer");
  prompts.forEach((prompt, p) => {
    if (prompt.length === 0) bad(`prompts[${p}] is empty`);
    for (const t of prompt) {
      if (!Number.isInteger(t) || t < 0 || t >= config.vocabSize) {
        bad(`prompts[${p}]: token ${t} is outside the vocabulary (0..${config.vocabSize - 1})`);
      }
    }
  });
  return { ...o, topP, topK, stopStrings };
}

/** Groups prompt indices so that each native batch's KV cache and sample count stay within bounds. */
function* batches(
  config: NativeConfig,
  prompts: readonly (readonly number[])[],
  o: Resolved,
): Generator<number[]> {
  const perToken = config.numLayers * 2 * config.numKvHeads * config.headDim * 4;
  const maxSamples = o.maxBatchSamples ?? 512;
  let batch: number[] = [];
  let bytes = 0;
  for (let p = 0; p < prompts.length; p++) {
    const need = perToken * (prompts[p]!.length + o.samplesPerPrompt * o.maxNewTokens);
    const samples = (batch.length + 1) * o.samplesPerPrompt;
    if (batch.length > 0 && (bytes + need > KV_BUDGET_BYTES || samples > maxSamples)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(p);
    bytes += need;
  }
  if (batch.length > 0) yield batch;
}

async function generateBatch(
  model: SamplingModel,
  prompts: readonly (readonly number[])[],
  batch: number[],
  o: Resolved,
  onFinished: (n: number) => void,
): Promise<Sample[]> {
  const K = o.samplesPerPrompt;
  const S = batch.length * K;
  const T = o.maxNewTokens;
  const V = model.config.vocabSize;
  const starts = new Int32Array(batch.length + 1);
  batch.forEach((p, i) => {
    starts[i + 1] = starts[i]! + prompts[p]!.length;
  });
  const promptTokens = Int32Array.from(batch.flatMap((p) => prompts[p]!));
  const seeds = new Uint32Array(S);
  batch.forEach((p, i) => {
    for (let k = 0; k < K; k++)
      seeds[i * K + k] = deriveSeed(o.seed, "generate", p + (o.firstPromptIndex ?? 0), k);
  });
  const tokens = new Int32Array(S * T);
  const logp = new Float32Array(S * T);
  const len = new Int32Array(S);
  const finish = new Int32Array(S);
  const logits = o.returnLogits ? new Float32Array(S * T * V) : null;
  const adapter = model.adapter;
  const sampler = createSampler(
    model.config,
    model.params,
    adapter ? { spec: adapter.spec, params: adapter.params } : null,
  );
  const eos = Int32Array.from(o.eosTokenIds);
  sampler.start(
    promptTokens,
    starts,
    K,
    seeds,
    { ...o, eosTokenIds: eos },
    tokens,
    logp,
    len,
    finish,
    logits,
  );

  const stopped = new Map<number, { tokens: number; text: string }>();
  const reported = new Uint8Array(S);
  const report = () => {
    let n = 0;
    for (let s = 0; s < S; s++) {
      if (finish[s] !== FINISH_RUNNING && reported[s] === 0) {
        reported[s] = 1;
        n++;
      }
    }
    if (n > 0) onFinished(n);
  };
  const checkStops = () => {
    if (o.stopStrings.length === 0) return;
    for (let s = 0; s < S; s++) {
      if (stopped.has(s) || reported[s] === 1) continue;
      const prompt = prompts[batch[Math.floor(s / K)]!]!;
      const hit = findStop(o.tokenizer!, prompt, tokens.subarray(s * T, s * T + len[s]!), o.stopStrings);
      if (hit === undefined) continue;
      stopped.set(s, hit);
      if (finish[s] === FINISH_RUNNING) sampler.finish(s);
      else finish[s] = FINISH_STOPPED;
    }
  };
  checkStops();
  report();
  let running = S;
  while (running > 0) {
    running = sampler.step(STEPS_PER_CHECK);
    checkStops();
    report();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  return Array.from({ length: S }, (_, s) => {
    const stop = stopped.get(s);
    const n = stop?.tokens ?? len[s]!;
    const ids = Array.from(tokens.subarray(s * T, s * T + n));
    let logprob = 0;
    for (let t = 0; t < n; t++) logprob += logp[s * T + t]!;
    const sample: Sample = {
      tokens: ids,
      logprob,
      finishReason: stop
        ? "stop"
        : finish[s] === FINISH_EOS
          ? "eos"
          : finish[s] === FINISH_LENGTH
            ? "length"
            : "stop",
    };
    if (o.tokenizer) {
      sample.text = stop?.text ?? decodeResponse(o.tokenizer, prompts[batch[Math.floor(s / K)]!]!, ids);
    }
    if (logits)
      sample.logits = Array.from({ length: n }, (_, t) => logits.slice((s * T + t) * V, (s * T + t + 1) * V));
    return sample;
  });
}

/**
 * The first stop string in the decoded response: the shortest token prefix whose text contains it, and the
 * text before it. Undefined when none occurs.
 */
export function findStop(
  tokenizer: Tokenizer,
  prompt: readonly number[],
  ids: Int32Array,
  stopStrings: string[],
): { tokens: number; text: string } | undefined {
  const at = (text: string) => {
    let best = -1;
    for (const s of stopStrings) {
      const i = text.indexOf(s);
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  };
  const decode = (n: number) => decodeResponse(tokenizer, prompt, Array.from(ids.subarray(0, n)));
  const full = decode(ids.length);
  const cut = at(full);
  if (cut < 0) return undefined;
  let n = ids.length;
  while (n > 1 && at(decode(n - 1)) >= 0) n--;
  return { tokens: n, text: full.slice(0, cut) };
}
