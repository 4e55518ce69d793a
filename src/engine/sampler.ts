/**
 * The typed binding of the addon's KV-cache sampler (native/generate.cpp). One sampler serves one batch
 * at a time: `start` prefills the prompts and draws each sample's first token, `step` decodes, `finish`
 * ends a sample early (a stop string). Outputs land in the caller's typed arrays, sample s = p * K + k.
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
