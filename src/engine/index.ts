/**
 * The typed binding of the native addon (native/addon.cpp, built by node-gyp into
 * build/Release/dno_native.node). Buffers are JS-owned typed arrays that the kernels read and write in
 * place, without copies. The addon does no validation beyond shapes: callers pass checked inputs.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { DnoError } from "../util/errors.js";

/** The decoder's shape, as native/model.h's LlamaConfig (built by src/model/config.ts). */
export interface NativeConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** llama3 RoPE frequency scaling, or null for plain RoPE. */
  ropeLlama3: {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  } | null;
  qkvBias: boolean;
  oBias: boolean;
  tieWordEmbeddings: boolean;
  /** Mistral: query i sees key j iff 0 <= i - j < slidingWindow; 0 means no window. */
  slidingWindow: number;
  /** This embed_tokens row gets no gradient from the input lookup (HF padding_idx); -1 for none. */
  padTokenId: number;
}

/** One parameter tensor in the flat buffer (Hugging Face name, shape, offset and size in elements). */
export interface TensorSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

type FloatArray = Float32Array | Float64Array;

/** bf16 GEMM kernels, best first (see Engine.bgemmKernel). */
export const BGEMM_KERNELS = ["amx", "avx512bf16", "emulated"] as const;
export type BgemmKernel = (typeof BGEMM_KERNELS)[number];

/**
 * A LoRA adapter's shape for native/lora.h: rank, scale (lora_alpha / r, or / sqrt(r) with rsLoRA) and
 * the adapted projections by PEFT's names (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj).
 */
export interface NativeLoraSpec {
  rank: number;
  scale: number;
  targets: readonly string[];
}

/**
 * A decoder over a flat parameter buffer (and a gradient buffer for training). A batch is S sequences
 * packed back to back: sequence s is rows starts[s] .. starts[s+1]-1, at positions 0, 1, ...
 */
export interface NativeModel<F extends FloatArray> {
  /**
   * logp[n] = log p(targets[n] | earlier rows of its sequence), 0 where targets[n] is -1.
   * keep: keep activations for backward. lastLogits (S x vocab): each sequence's last-row logits.
   */
  forward(
    tokens: Int32Array,
    starts: Int32Array,
    targets: Int32Array,
    logp: F,
    keep: boolean,
    lastLogits: F | null,
  ): void;
  /**
   * grads += d(sum_n dlogp[n] logp[n]) / d params, for the last forward with keep = true (no base
   * gradient when the model was built without grads), and loraGrads += the adapter's when it trains.
   */
  backward(dlogp: F): void;
  /** GEMM inputs in bf16 (float32 accumulation) or float32; everything else stays float32. */
  setPrecision(precision: "fp32" | "bf16"): void;
  /**
   * Activation recomputation: a training forward keeps only each layer's input, and backward recomputes
   * the layer's activations before its own backward (bit-identical gradients, one layer's memory).
   */
  setRecompute(on: boolean): void;
  /**
   * The head computes its logits about chunkValues at a time (default 2^22, whole vocabulary chunks of at
   * least 256 columns), and a training forward without recomputation keeps up to cacheBytes of them
   * (default 512 MiB) for backward, which recomputes the rest: bit-identical gradients either way.
   */
  setHeadMemory(chunkValues: number, cacheBytes: number): void;
  /**
   * Applies an adapter (laid out by loraLayout) unmerged in every later forward; with loraGrads,
   * backward trains it. setLora(null) removes it.
   */
  setLora(spec: NativeLoraSpec | null, params?: F, loraGrads?: F | null): void;
}

export interface Engine {
  paramLayout(config: NativeConfig): { tensors: TensorSlot[]; total: number };
  /** A LoRA adapter's tensors (PEFT key names) in its flat buffer. */
  loraLayout(config: NativeConfig, spec: NativeLoraSpec): { tensors: TensorSlot[]; total: number };
  /** float32, the engine; grads null: the base is frozen (an adapter may train) */
  Model: new (
    config: NativeConfig,
    params: Float32Array,
    grads: Float32Array | null,
  ) => NativeModel<Float32Array>;
  /** float64, for finite-difference tests */
  Model64: new (
    config: NativeConfig,
    params: Float64Array,
    grads: Float64Array | null,
  ) => NativeModel<Float64Array>;
  /** AdamW on elements [offset, offset + length) of params, m, v with grads; step counts from 1. */
  adamw(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    offset: number,
    length: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  /** sum of x[i]^2, accumulated in double */
  sumSquares(x: Float32Array): number;
  /** x *= s in place */
  scale(x: Float32Array, s: number): void;
  setNumThreads(n: number): void;
  numThreads(): number;
  /** the GEMM microkernel this CPU runs: "avx512", "avx2" or "portable" */
  sgemmKernel(): string;
  /**
   * Tests and benchmarks: C (M x N) = alpha op(A) op(B) + beta C on row-major matrices with leading
   * dimensions (native/gemm.h); op(A) is A^T (A stored K x M) when transA, likewise op(B).
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
  ): void;
  /** Tests and benchmarks: forces a GEMM microkernel; false (nothing changed) when this CPU lacks it. */
  sgemmUseKernel(name: string): boolean;
  /**
   * bf16 GEMM with float32 accumulation (native/gemm_bf16.h), sgemm's arguments: op(A) and op(B) are
   * rounded to bf16 as they are packed; B may also be bf16 bits already (a Uint16Array from toBf16).
   */
  bgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array | Uint16Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
  ): void;
  /** the bf16 kernel bgemm runs: "amx", "avx512bf16" or "emulated" (no bf16 instructions) */
  bgemmKernel(): BgemmKernel;
  /** whether this CPU (and OS) runs a bf16 kernel in hardware: amx or avx512bf16 */
  bgemmHasHardware(): boolean;
  /** forces a bf16 kernel; false (nothing changed) when this CPU lacks it */
  bgemmUseKernel(name: string): boolean;
  /** out = x rounded to bf16 (to nearest even), as raw bits */
  toBf16(x: Float32Array, out: Uint16Array): void;
  /** seconds per phase (matmul, attention, ...) of Model forward/backward calls since the last call */
  kernelProfile(): Record<string, number>;
  /** each kernel's backward against central finite differences, in float64 */
  kernelGradchecks(): { kernel: string; checked: number; maxAbsErr: number; maxRelErr: number }[];
}

const addonPath = fileURLToPath(new URL("../../../build/Release/dno_native.node", import.meta.url));
let loaded: Engine | undefined;

/** The native engine, loaded on first use. */
export function engine(): Engine {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) {
    throw new DnoError(
      `the native engine is not built (${addonPath} is missing): run \`npm ci\`, or \`npm run build:native\``,
    );
  }
  const addon = createRequire(import.meta.url)(addonPath) as Engine;
  const threads = Number(process.env.DNO_THREADS);
  if (Number.isInteger(threads) && threads > 0) addon.setNumThreads(threads);
  const forced = process.env.DNO_BGEMM_KERNEL;
  if (forced && !addon.bgemmUseKernel(forced)) {
    const usable = BGEMM_KERNELS.filter((k) => addon.bgemmUseKernel(k));
    throw new DnoError(`DNO_BGEMM_KERNEL=${forced}: this CPU cannot run it; it runs ${usable.join(", ")}`);
  }
  loaded = addon;
  return loaded;
}
