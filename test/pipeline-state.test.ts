import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
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

test("a writer killed mid-transaction: the next read-only open rolls its journal back and reads", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-state-"));
  const state = RunState.open(dir, { create: true });
  state.setMeta({ config: "before" });
  state.close();
  const file = join(dir, "state.sqlite");
  // A child spills a large uncommitted write into the database file, then is killed: a hot journal.
  const sqlite = createRequire(import.meta.url).resolve("better-sqlite3");
  const writer = `const db = new (require(${JSON.stringify(sqlite)}))(${JSON.stringify(file)});
    db.pragma("cache_size = 1"); db.exec("BEGIN");
    const put = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    for (let i = 0; i < 200; i++) put.run("k" + i, "x".repeat(4000));
    put.run("config", "after"); process.kill(process.pid, "SIGKILL");`;
  const r = spawnSync(process.execPath, ["-e", writer]);
  assert.equal(r.signal, "SIGKILL", r.stderr.toString());
  assert.ok(existsSync(`${file}-journal`) && statSync(`${file}-journal`).size > 0, "a hot journal");
  const reopened = RunState.open(dir, { create: false });
  assert.equal(reopened.getMeta("config"), "before");
  assert.equal(reopened.getMeta("k0"), undefined);
  reopened.close();
});
