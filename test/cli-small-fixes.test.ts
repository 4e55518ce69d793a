/**
 * The small things a first user trips over: `dno judge` without an oracle, `dno judge` when every item
 * failed, the `preference` key for two candidates in every mode, `dno report` on a config folder.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { progressUnit } from "../src/cli/stage-progress.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const dno = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8" });

function judgeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-small-"));
  writeFileSync(
    join(dir, "in.jsonl"),
    '{"id": 1, "prompt": "p", "candidates": ["a", "bb"]}\n{"id": 2, "prompt": "p", "candidates": ["a", "b", "c"]}\n',
  );
  writeFileSync(join(dir, "scores.mjs"), "export const score = (p, cs) => cs.map((c) => c.length);\n");
  writeFileSync(
    join(dir, "prefers.mjs"),
    "export const prefer = (p, a, b) => (a.length > b.length ? 1 : 0);\n",
  );
  writeFileSync(join(dir, "broken.mjs"), 'export function prefer() { throw new Error("no"); }\n');
  for (const m of ["scores", "prefers", "broken"]) {
    writeFileSync(join(dir, `${m}.yaml`), `kind: programmatic\nmodule: ${m}.mjs\n`);
  }
  return dir;
}

test("dno judge without a config or --base-url/--model says what it needs", () => {
  const dir = judgeDir();
  const r = dno(dir, "judge", "--input", "in.jsonl", "--output", "out.jsonl");
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(
    r.stderr,
    /^dno: error: dno judge needs an oracle: --config FILE.*--base-url URL and --model NAME/,
  );
});

test("dno judge: `preference` for two candidates whatever the mode; exit 1 when the items failed", () => {
  const dir = judgeDir();
  for (const m of ["scores", "prefers"]) {
    const r = dno(dir, "judge", "--config", `${m}.yaml`, "--input", "in.jsonl", "--output", `${m}.jsonl`);
    assert.equal(r.status, 0, r.stderr);
    const rows = readFileSync(join(dir, `${m}.jsonl`), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok("preference" in rows[0], `${m}: two candidates have a preference`);
    assert.ok(!("preference" in rows[1]), `${m}: three candidates have none`);
    assert.ok(rows[0].preference < 0.5, `${m}: "a" loses to "bb"`);
  }
  const failed = dno(dir, "judge", "--config", "broken.yaml", "--input", "in.jsonl", "--output", "b.jsonl");
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /judged 2 items, 2 failed/);
  assert.match(failed.stderr, /prefer\(\) threw: no/);
  assert.match(failed.stderr, /dno: error: in\.jsonl: 2 of 2 judgments failed, more than --max-failed/);
  assert.ok(existsSync(join(dir, "b.jsonl")), "the failures are still written");
});

test("dno report and dno status on a config folder point at its run directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-small-"));
  assert.equal(dno(dir, "init", "my-run").status, 0);
  for (const cmd of ["report", "status"]) {
    const r = dno(dir, cmd, "my-run");
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /my-run: not a dno run directory \(no state\.sqlite\) but a config folder; give its run directory instead: my-run\/run \(run_dir of my-run\/dno\.yaml\)/,
    );
  }
});

test("progress bars name their units", () => {
  assert.equal(progressUnit("sft"), "steps");
  assert.equal(progressUnit("2/train"), "steps");
  assert.equal(progressUnit("1/sample"), "samples");
  assert.equal(progressUnit("3/eval judge"), "prompts");
  assert.equal(progressUnit("1/reference pi_ref"), "responses");
});
