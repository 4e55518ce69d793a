import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  forEachCheckpointFile,
  type NamedTensor,
  readSafetensors,
  writeCheckpoint,
  writeSafetensors,
} from "../src/model/safetensors.js";
import { DnoError } from "../src/util/errors.js";

function tensors(): NamedTensor[] {
  const a = new Float32Array(6).map((_, i) => (i - 2.5) * 0.37);
  const special = new Float32Array([0, -0, 1e-40, -3.4e38, Number.POSITIVE_INFINITY, 65504, 6.1e-5, 1 / 3]);
  return [
    { name: "a.weight", shape: [2, 3], data: a },
    { name: "special", shape: [8], data: special },
    { name: "empty", shape: [0, 4], data: new Float32Array(0) },
  ];
}

const dir = () => mkdtempSync(join(tmpdir(), "dno-st-"));

test("safetensors: F32, F16 and BF16 files round-trip bit-exactly", () => {
  const d = dir();
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    const first = join(d, `first-${dtype}.safetensors`);
    writeSafetensors(first, tensors(), dtype);
    const back = readSafetensors(first);
    assert.deepEqual([...back.keys()], ["a.weight", "special", "empty"]);
    assert.deepEqual(back.get("a.weight")!.shape, [2, 3]);
    const second = join(d, `second-${dtype}.safetensors`);
    writeSafetensors(second, [...back.values()], dtype);
    assert.ok(readFileSync(first).equals(readFileSync(second)), `${dtype} bytes differ after a round trip`);
    if (dtype === "F32") {
      for (const t of tensors()) {
        const got = back.get(t.name)!.data;
        assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(t.data.buffer)));
      }
    }
  }
  // the header is 8-byte aligned and readable as plain JSON
  const bytes = readFileSync(join(d, "first-F32.safetensors"));
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  assert.equal(JSON.parse(bytes.subarray(8, 8 + n).toString()).__metadata__.format, "pt");
});

test("safetensors: F16 and BF16 conversions round to nearest even", () => {
  const d = dir();
  const x = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1e-7, 70000]);
  for (const [dtype, expected] of [
    ["F16", [1, 1 + 2 ** -9, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1.1920928955078125e-7, Number.POSITIVE_INFINITY]],
    ["BF16", [1, 1, 1, 1 + 2 ** -6, 1.0011717677116394e-7, 70144]],
  ] as const) {
    const p = join(d, `${dtype}.safetensors`);
    writeSafetensors(p, [{ name: "x", shape: [6], data: x }], dtype);
    assert.deepEqual([...readSafetensors(p).get("x")!.data], expected, dtype);
  }
});

test("safetensors: 16-bit tensors larger than one conversion chunk read back whole", () => {
  const d = mkdtempSync(join(tmpdir(), "dno-st-"));
  const n = (1 << 22) + 37; // past one 2^22-element staging chunk
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = ((i % 251) - 125) / 64; // exact in F16 and BF16
  for (const dtype of ["F16", "BF16"] as const) {
    const p = join(d, `big-${dtype}.safetensors`);
    writeSafetensors(p, [{ name: "x", shape: [n], data: x }], dtype);
    const back = readSafetensors(p).get("x")!.data;
    assert.equal(back.length, n);
    assert.ok(
      back.every((v, i) => v === x[i]),
      dtype,
    );
  }
});

test("safetensors: sharded checkpoints with an index load like one file", () => {
  const d = dir();
  writeCheckpoint(d, tensors(), 30); // forces three shards
  const index = JSON.parse(readFileSync(join(d, "model.safetensors.index.json"), "utf8"));
  assert.deepEqual(Object.values(index.weight_map), [
    "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
  ]);
  const seen: string[] = [];
  forEachCheckpointFile(d, (r, names) => {
    for (const name of names) {
      seen.push(name);
      assert.deepEqual([...r.read(name)], [...tensors().find((t) => t.name === name)!.data]);
    }
  });
  assert.deepEqual(seen, ["a.weight", "special", "empty"]);
  writeCheckpoint(d, tensors()); // back to one file: the shards go
  const files: string[] = [];
  forEachCheckpointFile(d, (r) => files.push(r.path));
  assert.deepEqual(files, [join(d, "model.safetensors")]);
});

test("safetensors: truncated and corrupted files name the file and the byte offset", () => {
  const d = dir();
  const good = join(d, "good.safetensors");
  writeSafetensors(good, tensors());
  const bytes = readFileSync(good);
  const n = Number(bytes.readBigUInt64LE(0));
  const variant = (name: string, edit: (b: Buffer) => Buffer) => {
    const p = join(d, name);
    writeFileSync(p, edit(Buffer.from(bytes)));
    return p;
  };
  const expectError = (path: string, message: RegExp) =>
    assert.throws(
      () => readSafetensors(path),
      (e: unknown) => {
        assert.ok(e instanceof DnoError, String(e));
        assert.ok(e.message.startsWith(path), e.message);
        assert.match(e.message, message);
        return true;
      },
    );
  const truncated = variant("truncated.safetensors", (b) => b);
  truncateSync(truncated, bytes.length - 3);
  expectError(
    truncated,
    /tensor "special" \(header at byte 8\): its data, bytes \d+-\d+, runs past the end of the \d+-byte file \(truncated\)/,
  );
  const cut = variant("cut.safetensors", (b) => b.subarray(0, 20));
  expectError(cut, /header length \d+ \(bytes 0-7\) runs past the end of the 20-byte file/);
  expectError(
    variant("tiny.safetensors", (b) => b.subarray(0, 5)),
    /5 bytes, too short/,
  );
  expectError(
    variant("json.safetensors", (b) => {
      b[8 + 1] = "}".charCodeAt(0);
      return b;
    }),
    new RegExp(`header at bytes 8-${8 + n - 1} is not valid JSON`),
  );
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  const rewrite = (
    name: string,
    edit: (h: Record<string, { dtype: string; data_offsets: number[] }>) => void,
  ) =>
    variant(name, (b) => {
      const h = structuredClone(header);
      edit(h);
      const text = Buffer.from(JSON.stringify(h).padEnd(n, " "));
      assert.equal(text.length, n);
      text.copy(b, 8);
      return b;
    });
  expectError(
    rewrite("dtype.safetensors", (h) => (h.special!.dtype = "I8")),
    /tensor "special".*dtype "I8" is not supported/,
  );
  expectError(
    rewrite("offsets.safetensors", (h) => (h["a.weight"]!.data_offsets = [0, 20])),
    /tensor "a\.weight".*data_offsets \[0, 20\] hold 20 bytes, but F32 \[2,3\] needs 24/,
  );
  assert.throws(
    () => readSafetensors(join(d, "missing.safetensors")),
    /missing\.safetensors: cannot open \(ENOENT\)/,
  );
});
