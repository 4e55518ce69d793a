/**
 * The GEMM tests' shared set-up (sgemm in float32, bgemm in bf16): a case's random strided operands, the
 * walk over C's elements that also checks the padding past each row, and the per-kernel loop.
 */
import assert from "node:assert/strict";
import type { Rng } from "../src/core/rng.js";

/** C = alpha op(A) op(B) + beta C, C is M x N, K the inner size. */
export interface GemmCase {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** extra columns in every leading dimension */
  pad: number;
}

/** Uniform in [-1, 1). */
export function randomArray(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.float() * 2 - 1;
  return out;
}

export interface GemmOperands {
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
  /** C before the product */
  C0: Float32Array;
  lda: number;
  ldb: number;
  ldc: number;
  /** op(A)[i, k] and op(B)[k, j] */
  a(i: number, k: number): number;
  b(k: number, j: number): number;
}

/** Random operands for `c`; with beta = 0, C's elements are NaN (a kernel must not read them). */
export function gemmOperands(c: GemmCase, rng: Rng): GemmOperands {
  const [aRows, aCols] = c.transA ? [c.K, c.M] : [c.M, c.K];
  const [bRows, bCols] = c.transB ? [c.N, c.K] : [c.K, c.N];
  const lda = aCols + c.pad;
  const ldb = bCols + c.pad;
  const ldc = c.N + c.pad;
  const A = randomArray(rng, Math.max(1, aRows * lda));
  const B = randomArray(rng, Math.max(1, bRows * ldb));
  const C = randomArray(rng, c.M * ldc);
  if (c.beta === 0) for (let i = 0; i < c.M; i++) C.fill(Number.NaN, i * ldc, i * ldc + c.N);
  return {
    A,
    B,
    C,
    C0: C.slice(),
    lda,
    ldb,
    ldc,
    a: (i, k) => (c.transA ? A[k * lda + i]! : A[i * lda + k]!),
    b: (k, j) => (c.transB ? B[j * ldb + k]! : B[k * ldb + j]!),
  };
}

/**
 * After the product: the padding past each row of C is as it was, and `check(i, j, got, old)` for every
 * element of C, old = beta * C0[i, j] (0 when beta = 0).
 */
export function forEachResult(
  c: GemmCase,
  ops: GemmOperands,
  check: (i: number, j: number, got: number, old: number) => void,
): void {
  const { C, C0, ldc } = ops;
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < ldc; j++) {
      const got = C[i * ldc + j]!;
      if (j >= c.N) assert.equal(got, C0[i * ldc + j], `padding C[${i},${j}] was written`);
      else check(i, j, got, c.beta === 0 ? 0 : c.beta * C0[i * ldc + j]!);
    }
  }
}

/** Every shape with each of the four transpose pairs. */
export function* transposePairs(
  shapes: readonly [number, number, number][],
): Generator<{ M: number; N: number; K: number; transA: boolean; transB: boolean }> {
  for (const [M, N, K] of shapes)
    for (const transA of [false, true]) for (const transB of [false, true]) yield { M, N, K, transA, transB };
}

/** The kernels of one GEMM this CPU runs, the one it runs by default, and a way to run with another. */
export interface Kernels {
  best: string;
  usable: string[];
  /** Runs `body` with `kernel` chosen, then chooses `best` again. */
  using(kernel: string, body: () => void): void;
}

/** Probes `names` through `use` (which chooses a kernel, false when this CPU lacks it). */
export function gemmKernels(
  names: readonly string[],
  best: string,
  use: (kernel: string) => boolean,
): Kernels {
  const usable = names.filter(use);
  use(best);
  return {
    best,
    usable,
    using(kernel, body) {
      assert.ok(use(kernel), `${kernel} kernel`);
      try {
        body();
      } finally {
        use(best);
      }
    },
  };
}
