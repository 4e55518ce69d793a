import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { BIN, dno, setupRun } from "./run-fixture.js";

const CONFIG = `seed: 5
run_dir: run
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
data: { prompts: prompts.jsonl, eval: eval.jsonl, validation: validation.jsonl }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 2
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.001, batch_size: 4 }
eval: { samples_per_prompt: 2 }
`;

const setup = (): string => setupRun(CONFIG);

const finalHash = (dir: string) => {
  const m = /final weights sha256 ([0-9a-f]{64})/.exec(dno(dir, "run", "--config", "dno.yaml").stdout);
  assert.ok(m, "dno run printed the final weights hash");
  return m[1]!;
};
const callLines = (dir: string) =>
  existsSync(join(dir, "calls.log"))
    ? readFileSync(join(dir, "calls.log"), "utf8").split("\n").length - 1
    : 0;

let reference: { hash: string; calls: number; dir: string } | undefined;
function uninterrupted() {
  if (!reference) {
    const dir = setup();
    const r = dno(dir, "run", "--config", "dno.yaml");
    assert.equal(r.status, 0, r.stderr);
    const hash = /final weights sha256 ([0-9a-f]{64})/.exec(r.stdout)![1]!;
    reference = { hash, calls: callLines(dir), dir };
  }
  return reference;
}

test("a tiny run end to end writes the run directory the issue describes", () => {
  const { dir, calls } = uninterrupted();
  const run = join(dir, "run");
  for (const f of [
    "config.yaml",
    "state.sqlite",
    "oracle-cache.sqlite",
    "metrics.jsonl",
    "report.html",
    "iterations/1/samples.jsonl",
    "iterations/1/annotations.jsonl",
    "iterations/2/pairs.jsonl",
    "checkpoints/pi_3/config.json",
    "checkpoints/pi_3/model.safetensors",
    "checkpoints/pi_3/tokenizer.json",
  ]) {
    assert.ok(existsSync(join(run, f)), f);
  }
  const trl = readFileSync(join(run, "iterations/1/pairs.trl.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(trl.length > 0);
  for (const key of ["prompt", "chosen", "rejected", "prompt_ids", "chosen_ids", "rejected_ids"]) {
    assert.ok(key in trl[0], key);
  }
  assert.ok(trl.every((r) => r.ref_chosen_logps < 0 && r.ref_rejected_logps < 0));
  assert.equal(readFileSync(join(run, "metrics.jsonl"), "utf8").trim().split("\n").length, 3);
  assert.match(readFileSync(join(run, "report.html"), "utf8"), /<svg/);
  assert.ok(calls > 0);
  // A second `dno run` on a finished directory repeats nothing.
  assert.equal(finalHash(dir), reference!.hash);
  assert.equal(callLines(dir), calls);
  const status = dno(dir, "status", "run");
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /finished/);
});

/** Starts `dno run` and SIGKILLs it once `stage` has finished and `delayMs` more have passed. */
function killAfter(dir: string, stage: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes(`  ${stage}: `)) setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL" || code === 0) resolve();
      else reject(new Error(`dno run exited ${code}: ${err}`));
    });
  });
}

test("kill -9 at several points, then resume: same final weights, no answered oracle call repeated", async () => {
  const ref = uninterrupted();
  const dir = setup();
  const kills: [string, number][] = [
    ["sft", 0],
    ["1/sample", 5],
    ["1/annotate", 0],
    ["1/reference", 20],
    ["2/pairs", 1],
  ];
  for (const [stage, delay] of kills) await killAfter(dir, stage, delay);
  assert.equal(finalHash(dir), ref.hash);
  // The same judgments as the uninterrupted run. A judgment is stored the moment its answer arrives, so
  // the only repeats are answers a kill cut off in flight: at most one candidate set's 15 comparisons.
  const distinct = (d: string) => new Set(readFileSync(join(d, "calls.log"), "utf8").trim().split("\n"));
  assert.deepEqual(distinct(dir), distinct(ref.dir));
  const extra = callLines(dir) - ref.calls;
  assert.ok(extra >= 0 && extra <= 15 * kills.length, `${extra} repeated calls`);
});

test("damaged run directories and bad inputs give one clear error", () => {
  const { dir } = uninterrupted();
  const pairs = join(dir, "run/iterations/1/pairs.jsonl");
  const original = readFileSync(pairs);
  writeFileSync(pairs, original.subarray(0, original.length - 10));
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^dno: error: .*pairs\.jsonl: changed since stage "1\/pairs"/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  writeFileSync(pairs, original);

  const fresh = setup();
  writeFileSync(join(fresh, "prompts.jsonl"), '{"id":"a","prompt":"rev ab="}\n{"id":"b","prompt":\n');
  const bad = dno(fresh, "run", "--config", "dno.yaml");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /prompts\.jsonl:2: invalid JSON/);

  writeFileSync(join(fresh, "dno.yaml"), CONFIG.replace("iterations: 2", "iterations: two"));
  const badConfig = dno(fresh, "run", "--config", "dno.yaml");
  assert.equal(badConfig.status, 1);
  assert.match(badConfig.stderr, /dno\.yaml: iterations: /);
});
