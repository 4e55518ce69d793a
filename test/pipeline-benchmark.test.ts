/**
 * `eval.benchmark` in a tiny run: MT-Bench and Arena-Hard on every policy (t = 0 .. T), their files in
 * the benchmarks' own formats, `benchmark.jsonl`, `dno status`'s plan and the report's plot.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { toJsonl } from "../src/util/jsonl.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const example = (name: string) =>
  fileURLToPath(new URL(`../../examples/benchmarks/${name}`, import.meta.url));
const DEMO_ORACLE = new URL("../src/demo/oracle.js", import.meta.url).href;

const config = (benchmark: string) => `seed: 3
run_dir: run
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
data: { prompts: prompts.jsonl, eval: eval.jsonl }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 1
sampling: { samples_per_prompt: 2, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.001, batch_size: 4 }
eval: { samples_per_prompt: 1, benchmark: ${benchmark} }
`;

function setup(benchmark: string): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-bench-run-"));
  const words = randomWords(4, 40, DEFAULT_TASK);
  const rows = (from: number, n: number, name: string) =>
    words
      .slice(from, from + n)
      .map((w, i) => ({ id: `${name}${i}`, prompt: promptOf(w), gold: teacherAnswer(w, 4, DEFAULT_TASK) }));
  writeFileSync(join(dir, "sft.jsonl"), toJsonl(rows(0, 20, "s")));
  writeFileSync(join(dir, "prompts.jsonl"), toJsonl(rows(20, 8, "p")));
  writeFileSync(join(dir, "eval.jsonl"), toJsonl(rows(28, 4, "e")));
  // The run's oracle answers preferences; the benchmark's judge is the demo judge module.
  writeFileSync(join(dir, "oracle.mjs"), `export { prefer } from ${JSON.stringify(DEMO_ORACLE)};\n`);
  for (const f of [
    "demo-judge.mjs",
    "demo-judge.yaml",
    "mt-bench-questions.jsonl",
    "arena-hard-questions.jsonl",
    "arena-hard-baseline.jsonl",
  ])
    copyFileSync(example(f), join(dir, f));
  writeFileSync(join(dir, "dno.yaml"), config(benchmark));
  return dir;
}

const dno = (dir: string, ...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8" });

test("eval.benchmark mt-bench: every policy graded, files in FastChat's formats, plotted with its interval", () => {
  const dir = setup("{ kind: mt-bench, questions: mt-bench-questions.jsonl, oracle: demo-judge.yaml }");
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(join(dir, "run/benchmark.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => [l.t, l.kind]),
    [
      [0, "mt-bench"],
      [1, "mt-bench"],
    ],
  );
  for (const l of lines) {
    // The demo judge rates 2, 7 or 9: every score and interval bound is in range, and nothing failed.
    assert.ok(l.score >= 2 && l.score <= 9, `score ${l.score}`);
    assert.equal(l.failed, 0);
    assert.equal(l.detail.turn1.n + l.detail.turn2.n, 16);
    if (l.low !== null) assert.ok(l.low <= l.score && l.score <= l.high);
  }
  const judgments = readFileSync(join(dir, "run/iterations/1/benchmark-judgments.jsonl"), "utf8")
    .trim()
    .split("\n");
  assert.equal(judgments.length, 16);
  assert.match(judgments[0]!, /"judge":\["eval\.benchmark judge","single-v1"\]/);
  assert.match(dno(dir, "status", "run").stdout, /done\s+1\/benchmark/);
  const report = dno(dir, "report", "run", "--out", "report.html");
  assert.equal(report.status, 0, report.stderr);
  const html = readFileSync(join(dir, "report.html"), "utf8");
  assert.match(html, /MT-Bench with its 95% interval/);
  assert.match(html, /<th>MT-Bench<\/th>/);
});

test("eval.benchmark arena-hard: both games per question against the baseline, Bradley-Terry interval", () => {
  const dir = setup(
    "{ kind: arena-hard, questions: arena-hard-questions.jsonl, baseline: arena-hard-baseline.jsonl, oracle: demo-judge.yaml, rounds: 20 }",
  );
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  const t0 = JSON.parse(readFileSync(join(dir, "run/iterations/0/benchmark.json"), "utf8"));
  assert.equal(t0.kind, "arena-hard");
  assert.ok(t0.low <= t0.score && t0.score <= t0.high, JSON.stringify(t0));
  assert.equal(t0.detail.questions, 8);
  const judgment = JSON.parse(
    readFileSync(join(dir, "run/iterations/0/benchmark-judgments.jsonl"), "utf8").split("\n")[0]!,
  );
  assert.equal(judgment.games.length, 2);
  assert.ok(existsSync(join(dir, "run/benchmark.jsonl")));
});
