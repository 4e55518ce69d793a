import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { BGEMM_KERNELS, engine } from "../src/engine/index.js";
import {
  forEachResult,
  type GemmCase,
  gemmKernels,
  gemmOperands,
  randomArray,
  transposePairs,
} from "./gemm-cases.js";

const addon = engine();
const kernels = gemmKernels(BGEMM_KERNELS, addon.bgemmKernel(), (k) => addon.bgemmUseKernel(k));

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

interface Case extends GemmCase {
  bf16B: boolean;
}

/**
 * Runs one case and checks every element of C twice: against float64 products of the bf16-rounded
 * operands, within float32 accumulation error ((K + 2) 2^-23 of the absolute sum; this catches any
 * packing or kernel mistake), and against the float32 operands themselves, within bf16 rounding
 * (2^-7 of the absolute sum: each operand moves by at most 2^-8 of itself). Padding past C's rows stays.
 */
function check(c: Case, rng: Rng): void {
  const ops = gemmOperands(c, rng);
  const { A, B, C, lda, ldb, ldc } = ops;
  let Bin: Float32Array | Uint16Array = B;
  if (c.bf16B) {
    Bin = new Uint16Array(B.length);
    addon.toBf16(B, Bin);
  }
  addon.bgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, Bin, ldb, c.beta, C, ldc);
  forEachResult(c, ops, (i, j, got, old) => {
    let rounded = 0;
    let exact = 0;
    let abs = 0;
    for (let k = 0; k < c.K; k++) {
      const [a, b] = [ops.a(i, k), ops.b(k, j)];
      rounded += roundBf16(a) * roundBf16(b);
      exact += a * b;
      abs += Math.abs(a * b);
    }
    const scale = Math.abs(c.alpha) * abs * (1 + 2 ** -7) + Math.abs(old) + 1e-30;
    const where = `${JSON.stringify(c)}: C[${i},${j}] = ${got}`;
    const errRounded = Math.abs(got - (c.alpha * rounded + old)) / scale;
    assert.ok(errRounded <= (c.K + 2) * 2 ** -23, `${where}, bf16 operands give ${c.alpha * rounded + old}`);
    const errExact = Math.abs(got - (c.alpha * exact + old)) / scale;
    assert.ok(
      errExact <= 2 ** -7 * 1.01 + (c.K + 2) * 2 ** -23,
      `${where}, float32 operands give ${c.alpha * exact + old}`,
    );
  });
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

for (const kernel of kernels.usable) {
  test(`bgemm (${kernel} kernel) matches bf16-rounded and float32 references`, () => {
    kernels.using(kernel, () => {
      const rng = Rng.derive(3, "bgemm", kernel);
      for (const t of transposePairs(shapes)) {
        const bf16B = (t.M + t.N + t.K + Number(t.transA) + Number(t.transB)) % 2 === 0;
        check({ ...t, alpha: 1, beta: 0, bf16B, pad: (t.M + t.N) % 3 }, rng);
        check({ ...t, alpha: -0.5, beta: 0.25, bf16B: !bf16B, pad: 1 }, rng);
      }
    });
  });
}

test("every bf16 kernel gives the same result (float32 sums in another order at most)", () => {
  const rng = Rng.derive(4, "bgemm-kernels");
  const [M, N, K] = [40, 50, 600];
  const A = randomArray(rng, M * K);
  const B = randomArray(rng, N * K);
  const results = kernels.usable.map((k) => {
    const C = new Float32Array(M * N);
    kernels.using(k, () => addon.bgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N));
    return C;
  });
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
  assert.equal(addon.bgemmKernel(), kernels.best);
  assert.ok(kernels.usable.includes("emulated"));
  assert.equal(addon.bgemmHasHardware(), kernels.best !== "emulated");
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
    new RegExp(
      `DNO_BGEMM_KERNEL=no-such-kernel: this CPU cannot run it; it runs ${kernels.usable.join(", ")}`,
    ),
  );
});
