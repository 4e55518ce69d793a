import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import {
  forEachResult,
  type GemmCase,
  gemmKernels,
  gemmOperands,
  randomArray,
  transposePairs,
} from "./gemm-cases.js";

const addon = engine();
const kernels = gemmKernels(["avx512", "avx2", "portable"], addon.sgemmKernel(), (k) =>
  addon.sgemmUseKernel(k),
);

// Checks every element of C against a float64 reference, within the float32 accumulation bound
// (K + 2) * 2^-23 * (|alpha| * sum_k |a b| + |beta c|).
function check(c: GemmCase, rng: Rng): void {
  const ops = gemmOperands(c, rng);
  const { A, B, C, lda, ldb, ldc } = ops;
  addon.sgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C, ldc);
  forEachResult(c, ops, (i, j, got, old) => {
    let sum = 0;
    let abs = 0;
    for (let k = 0; k < c.K; k++) {
      const p = ops.a(i, k) * ops.b(k, j);
      sum += p;
      abs += Math.abs(p);
    }
    const want = c.alpha * sum + old;
    const err = Math.abs(got - want) / (Math.abs(c.alpha) * abs + Math.abs(old) + 1e-30);
    if (!(err <= (c.K + 2) * 2 ** -23)) {
      assert.fail(`${JSON.stringify(c)}: C[${i},${j}] = ${got}, want ${want} (relative error ${err})`);
    }
  });
}

// Every transpose pair on odd sizes (1, 7, 17, 33, 257 in each position), K across several packed
// blocks, tiles with ragged edges, row and column counts past one packed panel (and past the rows a
// transposed A packs at once), strided operands.
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
  [16400, 5, 3],
];
const scalars: [number, number][] = [
  [1, 0],
  [0.5, 1],
  [-2, 0.25],
];

for (const kernel of kernels.usable) {
  test(`sgemm (${kernel} kernel) matches a float64 reference on every transpose pair`, () => {
    kernels.using(kernel, () => {
      const rng = Rng.derive(3, "gemm", kernel);
      for (const t of transposePairs(shapes)) {
        for (const [alpha, beta] of scalars) check({ ...t, alpha, beta, pad: (t.M + t.N) % 3 }, rng);
      }
    });
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
  assert.equal(addon.sgemmKernel(), kernels.best);
});
