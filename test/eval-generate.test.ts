import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, saveTokenizer } from "../src/model/tokenizer.js";

const dir = mkdtempSync(join(tmpdir(), "dno-eval-generate-"));

function checkpoint(name: string, seed: number): string {
  const path = join(dir, name);
  const config = parseConfig(
    { vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
    "test",
  );
  CausalLM.init(config, seed, 0.3).save(path);
  saveTokenizer(byteTokenizer(), path);
  return path;
}

const bin = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));

/** Runs the CLI in a child process (stdout in-process would mix with the test runner's own). */
function dno(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const readLines = (file: string) =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { id?: string; prompt: string; response: string });

test("dno eval --model generates for the baseline's prompts and judges what it generated", () => {
  const policy = checkpoint("policy", 1);
  // The judge prefers the longer response, so the expected outcomes follow from the saved generations.
  writeFileSync(
    join(dir, "judge.mjs"),
    "export function prefer(_p, a, b) { return a.length > b.length ? 1 : a.length < b.length ? 0 : 0.5; }\n",
  );
  writeFileSync(join(dir, "judge.yaml"), "kind: programmatic\nmodule: judge.mjs\n");
  const baseline = ["", "x", "a medium answer", "a rather long baseline answer that is hard to beat"];
  writeFileSync(
    join(dir, "teacher.jsonl"),
    baseline
      .map((response, i) => `${JSON.stringify({ id: `q${i}`, prompt: `prompt ${i}`, response })}\n`)
      .join(""),
  );
  const args = ["eval", "--model", policy, "--baseline", join(dir, "teacher.jsonl")];
  const run = (out: string) =>
    dno(
      ...args,
      "--oracle",
      join(dir, "judge.yaml"),
      "--max-new-tokens",
      "12",
      "--responses-out",
      out,
      "--json",
    );
  const r = run(join(dir, "gen-a.jsonl"));
  assert.equal(r.code, 0, r.stderr);
  const generated = readLines(join(dir, "gen-a.jsonl"));
  assert.deepEqual(
    generated.map((g) => [g.id, g.prompt]),
    baseline.map((_, i) => [`q${i}`, `prompt ${i}`]),
  );
  const outcomes: number[] = generated.map((g, i) => {
    const [a, b] = [g.response.length, baseline[i]!.length];
    return a > b ? 1 : a < b ? 0 : 0.5;
  });
  const m = JSON.parse(r.stdout) as Record<string, number>;
  assert.equal(m.n_total, 4);
  assert.ok(Math.abs(m.win_rate! - (100 * outcomes.reduce((x, y) => x + y, 0)) / 4) < 1e-9);
  // Same seed, same generations.
  assert.equal(run(join(dir, "gen-b.jsonl")).code, 0);
  assert.deepEqual(readLines(join(dir, "gen-b.jsonl")), generated);
});

test("two checkpoints need a prompt file; a missing baseline is named", () => {
  const a = checkpoint("a", 2);
  const b = checkpoint("b", 3);
  const judge = join(dir, "judge.yaml");
  const noPrompts = dno("eval", "--model", a, "--baseline-model", b, "--oracle", judge);
  assert.equal(noPrompts.code, 1);
  assert.match(noPrompts.stderr, /with --model and --baseline-model, give --prompts FILE/);
  writeFileSync(join(dir, "prompts.jsonl"), '{"prompt":"hello"}\n{"prompt":"bye"}\n');
  const both = dno(
    ...["eval", "--model", a, "--baseline-model", b, "--prompts", join(dir, "prompts.jsonl")],
    ...["--oracle", judge, "--max-new-tokens", "6", "--json"],
  );
  assert.equal(both.code, 0, both.stderr);
  assert.equal(JSON.parse(both.stdout).n_total, 2);
  const noBaseline = dno("eval", "--model", a, "--oracle", judge);
  assert.match(noBaseline.stderr, /give the baseline: --baseline FILE \(responses\) or --baseline-model DIR/);
});
