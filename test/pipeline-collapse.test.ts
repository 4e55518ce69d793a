/**
 * stop_on_collapse end to end on a tiny run: a guard set to trip at once stops the run after iteration 1,
 * keeps pi_1, says so on stderr, stdout, metrics.jsonl, the report and `dno status`, and a rerun agrees.
 * The snapshot config.yaml resumes the run, as `dno status` suggests.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { toJsonl } from "../src/util/jsonl.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const ORACLE = new URL("../src/demo/oracle.js", import.meta.url).href;

const CONFIG = `seed: 3
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
data: { prompts: prompts.jsonl, eval: eval.jsonl }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 3
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.001, batch_size: 4 }
eval: { samples_per_prompt: 2 }
guards: { stop_on_collapse: true, min_winrate_vs_initial: 0.99 }
`;

test("stop_on_collapse stops after the first tripped guard and keeps the last good iterate", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-collapse-"));
  const words = randomWords(4, 30, DEFAULT_TASK);
  const rows = (from: number, n: number) =>
    words
      .slice(from, from + n)
      .map((w, i) => ({ id: `r${from + i}`, prompt: promptOf(w), gold: teacherAnswer(w, 4, DEFAULT_TASK) }));
  writeFileSync(join(dir, "prompts.jsonl"), toJsonl(rows(0, 24)));
  writeFileSync(join(dir, "eval.jsonl"), toJsonl(rows(24, 6)));
  writeFileSync(join(dir, "oracle.mjs"), `export { prefer } from ${JSON.stringify(ORACLE)};\n`);
  writeFileSync(join(dir, "dno.yaml"), CONFIG);
  const run = () =>
    spawnSync(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir, encoding: "utf8" });
  const first = run();
  assert.equal(first.status, 0, first.stderr);
  assert.match(
    first.stderr,
    /WARNING collapse guard \(iteration 1, winrate_vs_initial\): win rate against the initial policy 0\.\d+ < 0\.99/,
  );
  assert.match(first.stdout, /stopped after iteration 1 \(guards\.stop_on_collapse\): result pi_1 /);
  assert.match(first.stdout, /^t\s+\| vs prev \| vs initial/m, "the per-iteration table");
  assert.match(first.stdout, /the last iterate before the collapse at iteration 1/);
  assert.ok(existsSync(join(dir, "run/checkpoints/pi_2")));
  assert.ok(!existsSync(join(dir, "run/iterations/2")), "iteration 2 never ran");
  const metrics = readFileSync(join(dir, "run/metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(metrics.length, 2);
  assert.deepEqual(metrics[0].guards, []);
  assert.equal(metrics[1].guards[0].guard, "winrate_vs_initial");
  const report = readFileSync(join(dir, "run/report.html"), "utf8");
  assert.match(report, /Collapse warning/);
  assert.match(report, /stopped after iteration 1 \(guards\.stop_on_collapse\) and kept pi_1/);
  assert.match(report, /0 \(last good\)/);

  const status = spawnSync(process.execPath, [BIN, "status", "run"], { cwd: dir, encoding: "utf8" });
  assert.match(status.stdout, /finished early: a collapse guard stopped the run/);
  const again = spawnSync(process.execPath, [BIN, "run", "--config", "run/config.yaml"], {
    cwd: dir,
    encoding: "utf8",
  });
  assert.equal(again.status, 0, again.stderr);
  const hash = (s: string) => /final weights sha256 ([0-9a-f]{64})/.exec(s)?.[1];
  assert.equal(hash(again.stdout), hash(first.stdout), "the snapshot resumes the same run");
  assert.match(again.stdout, /result pi_1 /);
});
