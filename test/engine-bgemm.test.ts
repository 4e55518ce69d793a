import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { BGEMM_KERNELS, engine } from "../src/engine/index.js";

const addon = engine();
const bestKernel = addon.bgemmKernel();
const kernels = BGEMM_KERNELS.filter((k) => addon.bgemmUseKernel(k));
addon.bgemmUseKernel(bestKernel);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** x rounded to bf16, to nearest even, as a number (an independent rounding from the addon's). */
function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if (Number.isNaN(f32[0])) return Number.NaN;
  u32[0] = (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0]!;
}

function randomArray(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.float() * 2 - 1;
  return out;
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  bf16B: boolean;
  pad: number;
}

/**
 * Runs one case and checks every element of C twice: against float64 products of the bf16-rounded
 * operands, within float32 accumulation error ((K + 2) 2^-23 of the absolute sum; this catches any
 * packing or kernel mistake), and against the float32 operands themselves, within bf16 rounding
 * (2^-7 of the absolute sum: each operand moves by at most 2^-8 of itself). Padding past C's rows stays.
 */
function check(c: Case, rng: Rng): void {
  const [aRows, aCols] = c.transA ? [c.K, c.M] : [c.M, c.K];
  const [bRows, bCols] = c.transB ? [c.N, c.K] : [c.K, c.N];
  const lda = aCols + c.pad;
  const ldb = bCols + c.pad;
  const ldc = c.N + c.pad;
  const A = randomArray(rng, Math.max(1, aRows * lda));
  const B = randomArray(rng, Math.max(1, bRows * ldb));
  const C = randomArray(rng, c.M * ldc);
  if (c.beta === 0) for (let i = 0; i < c.M; i++) C.fill(Number.NaN, i * ldc, i * ldc + c.N);
  const C0 = C.slice();
  let Bin: Float32Array | Uint16Array = B;
  if (c.bf16B) {
    Bin = new Uint16Array(B.length);
    addon.toBf16(B, Bin);
  }
  addon.bgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, Bin, ldb, c.beta, C, ldc);
  const a = (i: number, k: number) => (c.transA ? A[k * lda + i]! : A[i * lda + k]!);
  const b = (k: number, j: number) => (c.transB ? B[j * ldb + k]! : B[k * ldb + j]!);
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < ldc; j++) {
      const got = C[i * ldc + j]!;
      if (j >= c.N) {
        assert.equal(got, C0[i * ldc + j], `padding C[${i},${j}] was written`);
        continue;
      }
      let rounded = 0;
      let exact = 0;
      let abs = 0;
      for (let k = 0; k < c.K; k++) {
        rounded += roundBf16(a(i, k)) * roundBf16(b(k, j));
        exact += a(i, k) * b(k, j);
        abs += Math.abs(a(i, k) * b(k, j));
      }
      const old = c.beta === 0 ? 0 : c.beta * C0[i * ldc + j]!;
      const scale = Math.abs(c.alpha) * abs * (1 + 2 ** -7) + Math.abs(old) + 1e-30;
      const where = `${JSON.stringify(c)}: C[${i},${j}] = ${got}`;
      const errRounded = Math.abs(got - (c.alpha * rounded + old)) / scale;
      assert.ok(
        errRounded <= (c.K + 2) * 2 ** -23,
        `${where}, bf16 operands give ${c.alpha * rounded + old}`,
      );
      const errExact = Math.abs(got - (c.alpha * exact + old)) / scale;
      assert.ok(
        errExact <= 2 ** -7 * 1.01 + (c.K + 2) * 2 ** -23,
        `${where}, float32 operands give ${c.alpha * exact + old}`,
      );
    }
  }
}

// Every transpose pair, odd sizes in each position, several 32-row groups (the avx512bf16 kernel splits each
// in strips of 12, 12 and 8 rows) and 32-column pairs with ragged edges, depth across k-blocks (at most 512
// or 768), more columns than one packed block (2048), strided operands.
const shapes: [number, number, number][] = [
  [1, 1, 1],
  [7, 17, 33],
  [33, 7, 17],
  [17, 33, 7],
  [70, 65, 40],
  [60, 45, 70],
  [5, 9, 1100],
  [3, 2100, 5],
];

for (const kernel of kernels) {
  test(`bgemm (${kernel} kernel) matches bf16-rounded and float32 references`, () => {
    assert.ok(addon.bgemmUseKernel(kernel));
    try {
      const rng = Rng.derive(3, "bgemm", kernel);
      for (const [M, N, K] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const bf16B = (M + N + K + Number(transA) + Number(transB)) % 2 === 0;
            check({ M, N, K, transA, transB, alpha: 1, beta: 0, bf16B, pad: (M + N) % 3 }, rng);
            check({ M, N, K, transA, transB, alpha: -0.5, beta: 0.25, bf16B: !bf16B, pad: 1 }, rng);
          }
        }
      }
    } finally {
      addon.bgemmUseKernel(bestKernel);
    }
  });
}

test("every bf16 kernel gives the same result (float32 sums in another order at most)", () => {
  const rng = Rng.derive(4, "bgemm-kernels");
  const [M, N, K] = [40, 50, 600];
  const A = randomArray(rng, M * K);
  const B = randomArray(rng, N * K);
  const results = kernels.map((k) => {
    addon.bgemmUseKernel(k);
    const C = new Float32Array(M * N);
    addon.bgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
    return C;
  });
  addon.bgemmUseKernel(bestKernel);
  for (const C of results.slice(1)) {
    for (let i = 0; i < C.length; i++) assert.ok(Math.abs(C[i]! - results[0]![i]!) <= 1e-4, `element ${i}`);
  }
});

test("toBf16 rounds to nearest even and keeps NaN and infinities", () => {
  const x = new Float32Array([
    1,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    -(1 + 2 ** -7 + 2 ** -9),
    Infinity,
    Number.NaN,
    3e38,
  ]);
  const out = new Uint16Array(x.length);
  addon.toBf16(x, out);
  const back = [...out].map((h) => {
    u32[0] = h << 16;
    return f32[0]!;
  });
  assert.deepEqual(back.slice(0, 5), [1, 1, 1 + 2 ** -6, -(1 + 2 ** -7), Infinity]);
  assert.ok(Number.isNaN(back[5]));
  assert.equal(back[6], roundBf16(3e38));
  for (let i = 0; i < x.length; i++) if (!Number.isNaN(x[i])) assert.equal(back[i], roundBf16(x[i]!));
});

test("bgemm rejects operands of the wrong type or size, and unknown kernels", () => {
  const ok = new Float32Array(6);
  assert.throws(
    () => addon.bgemm(false, false, 2, 3, 3, 1, ok, 3, new Uint16Array(6), 3, 0, ok, 3),
    /B holds 6 bf16 values, needs 9/,
  );
  assert.throws(
    () =>
      addon.bgemm(
        false,
        false,
        1,
        1,
        1,
        1,
        ok,
        1,
        new Float64Array(1) as unknown as Float32Array,
        1,
        0,
        ok,
        1,
      ),
    /B Float32Array or Uint16Array/,
  );
  assert.equal(addon.bgemmUseKernel("no-such-kernel"), false);
  assert.equal(addon.bgemmKernel(), bestKernel);
  assert.ok(kernels.includes("emulated"));
  assert.equal(addon.bgemmHasHardware(), bestKernel !== "emulated");
});

test("DNO_BGEMM_KERNEL forces a kernel, and names the usable ones when this CPU lacks it", () => {
  const engineModule = new URL("../src/engine/index.js", import.meta.url).href;
  const script = `import(${JSON.stringify(engineModule)}).then((m) => console.log(m.engine().bgemmKernel()))`;
  const run = (kernel: string) =>
    spawnSync(process.execPath, ["-e", script], {
      env: { ...process.env, DNO_BGEMM_KERNEL: kernel },
      encoding: "utf8",
    });
  const forced = run("emulated");
  assert.equal(forced.status, 0, forced.stderr);
  assert.equal(forced.stdout.trim(), "emulated");
  const bad = run("no-such-kernel");
  assert.notEqual(bad.status, 0);
  assert.match(
    bad.stderr,
    new RegExp(`DNO_BGEMM_KERNEL=no-such-kernel: this CPU cannot run it; it runs ${kernels.join(", ")}`),
  );
});
