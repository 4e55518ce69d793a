import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { z } from "zod";
import { deriveSeed, Rng } from "../src/core/rng.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { DnoError } from "../src/util/errors.js";
import { readJsonl } from "../src/util/jsonl.js";

test("Rng is deterministic per seed and derive keys", () => {
  const a = Rng.derive(7, "samples", 3);
  const b = Rng.derive(7, "samples", 3);
  const c = Rng.derive(7, "samples", 4);
  const xs = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.nextUint32()),
  );
  assert.notDeepEqual(
    xs,
    Array.from({ length: 5 }, () => c.nextUint32()),
  );
  assert.notEqual(deriveSeed(1, "a"), deriveSeed(2, "a"));
});

test("Rng.float is uniform enough and in [0,1)", () => {
  const rng = new Rng(1);
  let sum = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const u = rng.float();
    assert.ok(u >= 0 && u < 1);
    sum += u;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30000; i++) counts[rng.categorical([1, 2, 3])]!++;
  assert.ok(Math.abs(counts[2]! / 30000 - 0.5) < 0.02, `categorical ${counts}`);
});

test("readJsonl names file:line on bad JSON and on schema errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-"));
  const file = join(dir, "in.jsonl");
  const schema = z.object({ id: z.string(), prompt: z.string() });
  writeFileSync(file, '{"id":"a","prompt":"p"}\n\n{"id":"b",\n');
  assert.throws(
    () => readJsonl(file, schema),
    (e: unknown) => e instanceof DnoError && /in\.jsonl:3: invalid JSON/.test(e.message),
  );
  writeFileSync(file, '{"id":"a","prompt":"p"}\n{"id":"b","prompt":5}\n');
  assert.throws(
    () => readJsonl(file, schema),
    (e: unknown) => e instanceof DnoError && /in\.jsonl:2: prompt:/.test(e.message),
  );
  writeFileSync(file, '{"id":"a","prompt":"p"}\n');
  assert.deepEqual(readJsonl(file, schema), [{ id: "a", prompt: "p" }]);
});

test("writeFileAtomic replaces the file whole", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-"));
  const file = join(dir, "x.json");
  writeFileAtomic(file, "old");
  writeFileAtomic(file, new Uint8Array([104, 105]));
  assert.equal(readFileSync(file, "utf8"), "hi");
});
