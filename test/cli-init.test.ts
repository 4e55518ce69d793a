/**
 * `dno init`: the default template is the demo's task with the demo's settings and learns (the last
 * iterate clearly beats the initial policy, accuracy rises, no collapse guard trips); the other
 * starting points write configs that validate, with oracles that prefer what they say.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parse as parseYaml } from "yaml";
import { demoConfig } from "../src/demo/demo.js";
import {
  DEFAULT_TASK,
  demoPreference,
  promptOf,
  randomWords,
  render,
  reverse,
  STYLES,
} from "../src/demo/task.js";
import { loadRunConfig } from "../src/pipeline/config.js";
import { findShared } from "../src/util/shared-dir.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const dno = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8" });
const BABYLLAMA = findShared("models/babyllama-105");

test("dno init writes the demo's task with the demo's settings; its oracle is the demo's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-init-"));
  const r = dno(dir, "init", "ex");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(dno(dir, "init", "ex").status, 1, "init never overwrites");
  const written = parseYaml(readFileSync(join(dir, "ex/dno.yaml"), "utf8"));
  const demo = demoConfig();
  for (const key of ["sampling", "pairs", "objective", "train", "eval", "iterations", "seed"] as const) {
    assert.deepEqual(written[key], demo[key], key);
  }
  assert.deepEqual({ ...written.sft, data: undefined }, { ...demo.sft, data: undefined });
  assert.deepEqual(written.model.from_scratch, demo.model!.from_scratch);
  loadRunConfig(join(dir, "ex/dno.yaml"));
  const { prefer } = (await import(pathToFileURL(join(dir, "ex/oracle.mjs")).href)) as {
    prefer: (p: string, a: string, b: string) => number;
  };
  const reference = demoPreference(DEFAULT_TASK);
  for (const w of randomWords(3, 40, DEFAULT_TASK)) {
    const answers = [...STYLES.map((s) => render(reverse(w), s)), w, `[${w}`, "", reverse(w).slice(1)];
    for (const a of answers)
      for (const b of answers) assert.equal(prefer(promptOf(w), a, b), reference(promptOf(w), a, b));
  }
});

test("dno init's template learns: the last iterate beats the initial policy, and accuracy rises", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-init-"));
  assert.equal(dno(dir, "init", "ex").status, 0);
  const run = dno(join(dir, "ex"), "run", "--config", "dno.yaml");
  assert.equal(run.status, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /WARNING collapse guard/);
  assert.match(run.stdout, /the result: pi_\d, chosen on the validation prompts/);
  const metrics = readFileSync(join(dir, "ex/run/metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  // The property, not this seed's path (the README's run: 0.556, 0.702, 0.732 vs initial): the last
  // iterate clearly better than the initial policy.
  const vsInitial = metrics.slice(1).map((m) => m.winrate_vs_initial as number);
  assert.equal(vsInitial.length, 3);
  assert.ok(vsInitial[2]! > 0.6, `the last iterate clearly beats the initial policy: ${vsInitial}`);
  assert.ok(metrics[3].metrics.accuracy > metrics[0].metrics.accuracy, "accuracy rises");
  const report = dno(dir, "report", "ex/run");
  assert.equal(report.status, 0, report.stderr);
  assert.match(readFileSync(join(dir, "ex/run/report.html"), "utf8"), /Pair composition/);
});

test("dno init --task hf and --task chat write configs that validate; --model must be a model directory", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-init-"));
  const model = BABYLLAMA ?? join(dir, "absent");
  if (BABYLLAMA) {
    const hf = dno(dir, "init", "hf", "--task", "hf", "--model", model);
    assert.equal(hf.status, 0, hf.stderr);
    assert.equal(loadRunConfig(join(dir, "hf/dno.yaml")).model.path, model);
    const { prefer } = (await import(pathToFileURL(join(dir, "hf/oracle.mjs")).href)) as {
      prefer: (p: string, a: string, b: string) => number;
    };
    assert.equal(prefer("Shout dog:", " DOG!", " DOG"), 0.8);
    assert.equal(prefer("Shout dog:", " DOG", " DoG!"), 1);
    assert.equal(prefer("Shout dog:", "DOG", " DOG "), 0.5);
  }
  const noModel = dno(dir, "init", "x", "--task", "hf", "--model", dir);
  assert.equal(noModel.status, 1);
  assert.match(noModel.stderr, /--model .*: no config\.json there/);
  const chat = dno(dir, "init", "chat", "--task", "chat");
  assert.equal(chat.status, 0, chat.stderr);
  assert.match(chat.stdout, /fill in model\.path and the oracle's baseUrl\/model/);
  const config = loadRunConfig(join(dir, "chat/dno.yaml"));
  assert.equal(config.oracle.kind, "llm-judge");
  const run = dno(join(dir, "chat"), "run", "--config", "dno.yaml");
  assert.equal(run.status, 1);
  assert.match(run.stderr, /my-model/);
});
