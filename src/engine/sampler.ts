/**
 * The typed binding of the addon's KV-cache sampler (native/generate.cpp). Either one whole batch:
 * `start` prefills the prompts and draws each sample's first token, `step` decodes, `finish` ends a
 * sample early (a stop string); outputs land in the caller's typed arrays, sample s = p * K + k. Or
 * continuous batching: `admit` adds one prompt's K samples to the running batch at any time (they join
 * the next `step`), `stop` ends one early, `release` frees a group once read. A sample's tokens are the
 * same either way: they depend only on its seed, its prompt and the weights.
 */
import { engine, type NativeConfig, type NativeLoraSpec } from "./index.js";

export const FINISH_RUNNING = 0;
export const FINISH_EOS = 1;
export const FINISH_LENGTH = 2;
export const FINISH_STOPPED = 3;

export interface NativeSamplingOptions {
  /** <= 0: greedy */
  temperature: number;
  /** 0: no top-k cut */
  topK: number;
  /** 1: no nucleus cut */
  topP: number;
  maxNewTokens: number;
  eosTokenIds: Int32Array;
}

export interface NativeSampler {
  /**
   * tokens (S*maxNew), logp (S*maxNew: each token's log-prob under the model at temperature 1),
   * len (S), finish (S: FINISH_*), logits (S*maxNew*vocab, the logits each token was drawn from) or null.
   */
  start(
    promptTokens: Int32Array,
    promptStarts: Int32Array,
    samplesPerPrompt: number,
    seeds: Uint32Array,
    options: NativeSamplingOptions,
    tokens: Int32Array,
    logp: Float32Array,
    len: Int32Array,
    finish: Int32Array,
    logits: Float32Array | null,
  ): void;
  /** Runs up to `steps` decode steps; returns how many samples are still running. */
  step(steps: number): number;
  finish(sample: number): void;
  /**
   * Prefills `promptTokens` and draws the first token of its K samples (seeds: one per sample); they
   * decode with every other running sample from the next `step` on. Outputs: tokens and logp
   * (K*maxNew), len (K), finish (K), sample k at k * maxNew. `id` (>= 0) must not be in use.
   */
  admit(
    id: number,
    promptTokens: Int32Array,
    samplesPerPrompt: number,
    seeds: Uint32Array,
    options: NativeSamplingOptions,
    tokens: Int32Array,
    logp: Float32Array,
    len: Int32Array,
    finish: Int32Array,
  ): void;
  /** Ends sample k of group `id` (it decodes no further). */
  stop(id: number, k: number): void;
  /** Frees group `id`'s caches; its output arrays are no longer written. */
  release(id: number): void;
}

/** An adapter the sampler applies unmerged: its spec and its buffer laid out by `loraLayout`. */
export interface SamplerLora {
  spec: NativeLoraSpec;
  params: Float32Array;
}

/** A sampler over a parameter buffer laid out by `paramLayout(config)` (kept alive by the sampler). */
export function createSampler(
  config: NativeConfig,
  params: Float32Array,
  lora: SamplerLora | null = null,
): NativeSampler {
  const addon = engine() as unknown as {
    Sampler: new (config: NativeConfig, params: Float32Array, lora: SamplerLora | null) => NativeSampler;
  };
  return new addon.Sampler(config, params, lora);
}
