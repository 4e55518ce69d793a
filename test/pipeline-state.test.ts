import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runStage, writeDirAt, writeJsonlAt } from "../src/pipeline/stages.js";
import { RunState } from "../src/pipeline/state.js";
import { DnoError } from "../src/util/errors.js";

test("a finished stage is skipped with its result; an unfinished one runs again", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-state-"));
  let runs = 0;
  const work = () => {
    runs++;
    writeJsonlAt(dir, "a/rows.jsonl", [{ x: 1 }]);
    return { n: 1 };
  };
  let state = RunState.open(dir);
  assert.deepEqual(await runStage(state, "one", ["a/rows.jsonl"], work), { n: 1 });
  await assert.rejects(
    runStage(state, "two", ["b"], () => {
      throw new Error("killed");
    }),
  );
  state.close();
  state = RunState.open(dir);
  assert.deepEqual(await runStage(state, "one", ["a/rows.jsonl"], work), { n: 1 });
  assert.equal(runs, 1);
  await runStage(state, "two", ["b"], () => writeDirAt(dir, "b", (d) => writeFileSync(join(d, "f"), "x")));
  assert.deepEqual(
    state.all().map((s) => s.name),
    ["one", "two"],
  );
  state.close();
});

test("changed, missing or damaged files are reported, never used", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-state-"));
  const state = RunState.open(dir);
  await runStage(state, "one", ["rows.jsonl"], () => writeJsonlAt(dir, "rows.jsonl", [{ x: 1 }]));
  writeFileSync(join(dir, "rows.jsonl"), '{"x":2}\n');
  await assert.rejects(
    runStage(state, "one", ["rows.jsonl"], () => {}),
    (e: unknown) => e instanceof DnoError && /rows\.jsonl: changed since stage "one"/.test(e.message),
  );
  state.close();
  const broken = mkdtempSync(join(tmpdir(), "dno-state-"));
  writeFileSync(join(broken, "state.sqlite"), "this is not a database, it was truncated".repeat(100));
  assert.throws(
    () => RunState.open(broken),
    (e: unknown) => e instanceof DnoError && /state\.sqlite: cannot open/.test(e.message),
  );
  assert.throws(
    () => RunState.open(mkdtempSync(join(tmpdir(), "dno-state-")), { create: false }),
    (e: unknown) => e instanceof DnoError && /not a dno run directory/.test(e.message),
  );
});
