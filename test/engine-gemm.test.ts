import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";

const addon = engine();
const bestKernel = addon.sgemmKernel();
const kernels = ["avx512", "avx2", "portable"].filter((k) => addon.sgemmUseKernel(k));
addon.sgemmUseKernel(bestKernel);

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  pad?: number; // extra columns in every leading dimension
}

function randomArray(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.float() * 2 - 1;
  return out;
}

// Runs one case through the addon and checks every element of C against a float64 reference, within
// the float32 accumulation bound (K + 2) * 2^-23 * (|alpha| * sum_k |a b| + |beta c|). Padding past
// each row of C must be left alone. Returns the worst error relative to that scale.
function check(c: Case, rng: Rng): number {
  const pad = c.pad ?? 0;
  const [aRows, aCols] = c.transA ? [c.K, c.M] : [c.M, c.K];
  const [bRows, bCols] = c.transB ? [c.N, c.K] : [c.K, c.N];
  const lda = aCols + pad;
  const ldb = bCols + pad;
  const ldc = c.N + pad;
  const A = randomArray(rng, Math.max(1, aRows * lda));
  const B = randomArray(rng, Math.max(1, bRows * ldb));
  const C = randomArray(rng, c.M * ldc);
  if (c.beta === 0) for (let i = 0; i < c.M; i++) C.fill(Number.NaN, i * ldc, i * ldc + c.N);
  const C0 = C.slice();
  addon.sgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C, ldc);
  const a = (i: number, k: number) => (c.transA ? A[k * lda + i] : A[i * lda + k]);
  const b = (k: number, j: number) => (c.transB ? B[j * ldb + k] : B[k * ldb + j]);
  let worst = 0;
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < ldc; j++) {
      const got = C[i * ldc + j];
      if (j >= c.N) {
        assert.equal(got, C0[i * ldc + j], `padding C[${i},${j}] was written`);
        continue;
      }
      let sum = 0;
      let abs = 0;
      for (let k = 0; k < c.K; k++) {
        const p = a(i, k) * b(k, j);
        sum += p;
        abs += Math.abs(p);
      }
      const old = c.beta === 0 ? 0 : c.beta * C0[i * ldc + j];
      const want = c.alpha * sum + old;
      const scale = Math.abs(c.alpha) * abs + Math.abs(old) + 1e-30;
      const err = Math.abs(got - want) / scale;
      if (!(err <= (c.K + 2) * 2 ** -23)) {
        assert.fail(`${JSON.stringify(c)}: C[${i},${j}] = ${got}, want ${want} (relative error ${err})`);
      }
      worst = Math.max(worst, err);
    }
  }
  return worst;
}

// Every transpose pair on odd sizes (1, 7, 17, 33, 257 in each position), K across several packed
// blocks, tiles with ragged edges, row and column counts past one packed panel, strided operands.
const shapes: [number, number, number][] = [
  [1, 1, 1],
  [7, 17, 33],
  [33, 7, 17],
  [17, 33, 7],
  [257, 1, 7],
  [1, 257, 33],
  [7, 33, 257],
  [33, 17, 600],
  [130, 97, 300],
  [200, 300, 40],
  [4100, 3, 2],
  [2, 4100, 3],
];
const scalars: [number, number][] = [
  [1, 0],
  [0.5, 1],
  [-2, 0.25],
];

for (const kernel of kernels) {
  test(`sgemm (${kernel} kernel) matches a float64 reference on every transpose pair`, () => {
    assert.ok(addon.sgemmUseKernel(kernel));
    try {
      const rng = Rng.derive(3, "gemm", kernel);
      for (const [M, N, K] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const [alpha, beta] of scalars) {
              check({ M, N, K, transA, transB, alpha, beta, pad: (M + N) % 3 }, rng);
            }
          }
        }
      }
    } finally {
      addon.sgemmUseKernel(bestKernel);
    }
  });
}

test("sgemm with K = 0 or alpha = 0 only scales C (beta = 0 clears NaNs)", () => {
  const C = new Float32Array([1, Number.NaN, 3, 4]);
  addon.sgemm(false, false, 2, 2, 0, 1, new Float32Array(1), 1, new Float32Array(1), 2, 0.5, C, 2);
  assert.deepEqual([...C].map(Number.isNaN), [false, true, false, false]);
  assert.deepEqual([C[0], C[2], C[3]], [0.5, 1.5, 2]);
  const A = new Float32Array([Number.NaN, 1, 2, 3]);
  addon.sgemm(false, false, 2, 2, 2, 0, A, 2, A, 2, 0, C, 2);
  assert.deepEqual([...C], [0, 0, 0, 0]);
});

test("sgemm gives bit-identical results on 1 thread and on the pool", () => {
  const rng = Rng.derive(5, "gemm-threads");
  const [M, N, K] = [300, 200, 500];
  const A = randomArray(rng, M * K);
  const B = randomArray(rng, K * N);
  const threads = addon.numThreads();
  const run = () => {
    const C = new Float32Array(M * N);
    addon.sgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
    return C;
  };
  const pooled = run();
  addon.setNumThreads(1);
  try {
    assert.equal(addon.numThreads(), 1);
    assert.deepEqual(run(), pooled);
  } finally {
    addon.setNumThreads(threads);
  }
});

test("sgemm rejects operands too small for their shape", () => {
  const small = new Float32Array(5);
  const ok = new Float32Array(6);
  assert.throws(
    () => addon.sgemm(false, false, 2, 3, 3, 1, small, 3, ok, 3, 0, ok, 3),
    /A holds 5 floats, needs 6/,
  );
  assert.throws(
    () => addon.sgemm(false, false, 2, 3, 3, 1, ok, 2, ok, 3, 0, ok, 3),
    /leading dimension of A/,
  );
  assert.throws(
    () => addon.sgemm(false, false, 2, 3, 3, 1, ok, 3, ok, 3, 0, ok, 3),
    /B holds 6 floats, needs 9/,
  );
  assert.equal(addon.sgemmUseKernel("no-such-kernel"), false);
  assert.equal(addon.sgemmKernel(), bestKernel);
});
