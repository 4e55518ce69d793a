import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { pairResponses, readResponses } from "../src/eval/responses.js";

const dno = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "dno-eval-responses-"));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}
const jsonl = (rows: unknown[]): string => rows.map((r) => `${JSON.stringify(r)}\n`).join("");

function runDno(...args: string[]) {
  return spawnSync(process.execPath, [dno, ...args], { encoding: "utf8", cwd: dir });
}

test("responses are read from JSONL or AlpacaEval's JSON outputs, with located errors", () => {
  const a = write(
    "a.jsonl",
    jsonl([
      { id: 1, prompt: "p", response: "r" },
      { prompt: "q", response: "s" },
    ]),
  );
  assert.deepEqual(readResponses(a), [
    { id: "1", prompt: "p", response: "r" },
    { prompt: "q", response: "s" },
  ]);
  const b = write("b.json", JSON.stringify([{ instruction: "p", output: "r", generator: "x" }]));
  assert.deepEqual(readResponses(b), [{ prompt: "p", response: "r" }]);
  const generated = write(
    "generated.jsonl",
    jsonl([
      {
        id: 0,
        prompt: "p",
        responses: [
          { text: "first", tokens: [1] },
          { text: "second", tokens: [2] },
        ],
      },
      {
        id: 1,
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "q" },
        ],
        responses: [{ text: "only" }],
      },
    ]),
  );
  assert.deepEqual(readResponses(generated), [
    { id: "0", prompt: "p", response: "first", samples: 2 },
    { id: "1", prompt: "q", response: "only" },
  ]);
  const bad = write(
    "bad.jsonl",
    `${jsonl([{ prompt: "p", response: "r" }])}\n${JSON.stringify({ prompt: "q" })}\n`,
  );
  assert.throws(
    () => readResponses(bad),
    /bad\.jsonl:3: needs a response \(or output, or responses: \[\{text\}\]\)/,
  );
  const badJson = write("bad.json", JSON.stringify([{ instruction: "p", output: "r" }, { output: 3 }]));
  assert.throws(() => readResponses(badJson), /bad\.json: record 1: /);
});

test("pairing by id when every record has one, else by prompt; every model response needs its baseline", () => {
  const files = { model: "m.jsonl", baseline: "b.jsonl" };
  const model = [
    { id: "1", prompt: "x", response: "mx" },
    { id: "2", prompt: "y", response: "my" },
  ];
  const baseline = [
    { id: "2", prompt: "y", response: "by" },
    { id: "3", prompt: "z", response: "bz" },
    { id: "1", prompt: "x", response: "bx" },
  ];
  assert.deepEqual(pairResponses(model, baseline, files), [
    { id: "1", prompt: "x", model: "mx", baseline: "bx" },
    { id: "2", prompt: "y", model: "my", baseline: "by" },
  ]);
  const noIds = baseline.map(({ prompt, response }) => ({ prompt, response }));
  assert.equal(pairResponses(model, noIds, files)[1]!.baseline, "by");
  assert.throws(
    () => pairResponses([{ prompt: "w", response: "m" }], noIds, files),
    /m\.jsonl: record 0: no baseline response in b\.jsonl for prompt "w"/,
  );
  assert.throws(
    () => pairResponses(model, [...baseline, baseline[0]!], files),
    /b\.jsonl: record 3: a second response for id "2"/,
  );
  assert.throws(
    () => pairResponses(model, [{ id: "1", prompt: "other", response: "b" }, baseline[0]!], files),
    /id "1" has a different prompt in b\.jsonl/,
  );
});

test("dno eval --responses judges with an oracle config, keeps failures out, and round-trips AlpacaEval annotations", () => {
  // The judge: the model wins when its answer is "right", ties on "tie", and fails (throws) on prompt "broken".
  write(
    "judge.mjs",
    `export function prefer(prompt, a, b) {
  if (prompt === "broken") throw new Error("judge down");
  return a === "right" ? 1 : a === "tie" ? 0.5 : 0;
}\n`,
  );
  write("judge.yaml", "kind: programmatic\nmodule: judge.mjs\n");
  const answers = ["right", "right", "right", "wrong", "tie", "right"];
  const prompts = ["p0", "p1", "p2", "p3", "p4", "broken"];
  write("model.jsonl", jsonl(prompts.map((prompt, i) => ({ id: i, prompt, response: answers[i] }))));
  write(
    "base.jsonl",
    jsonl(prompts.map((prompt, i) => ({ id: i, prompt, response: "base!" })))
      .split("\n")
      .reverse()
      .join("\n"),
  );
  const args = ["eval", "--responses", "model.jsonl", "--baseline", "base.jsonl", "--oracle", "judge.yaml"];
  const r = runDno(...args, "--json", "--annotations-out", "ann.json");
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as Record<string, number>;
  // Judged: 1, 1, 1, 0, 0.5 -> 3.5 / 5 = 70%; deviations .3 (x3), -.7, -.2: var (0.27 + 0.49 + 0.04) / 4 = 0.2.
  assert.ok(Math.abs(m.win_rate! - 70) < 1e-12);
  assert.ok(Math.abs(m.standard_error! - 100 * Math.sqrt(0.2 / 5)) < 1e-12);
  assert.deepEqual([m.n_wins, m.n_wins_base, m.n_draws, m.n_total, m.n_failed], [3, 1, 1, 5, 1]);
  assert.ok(m.ci_low! <= 70 && 70 <= m.ci_high!);
  assert.ok(m.lc_ci_low! <= m.lc_ci_high!, `LC interval ${m.lc_ci_low} to ${m.lc_ci_high}`);
  assert.equal(m.avg_length, Math.trunc((5 * 3 + 5 + 3 + 5) / 6));
  assert.equal(m.avg_length_baseline, 5);
  assert.match(r.stderr, /1 judgments failed \(first: prefer\(\) threw: judge down\)/);
  // Same seed, same interval.
  assert.equal(JSON.parse(runDno(...args, "--json").stdout).ci_low, m.ci_low);

  const back = runDno("eval", "--alpaca-annotations", "ann.json", "--json");
  assert.equal(back.status, 0, back.stderr);
  const a = JSON.parse(back.stdout) as Record<string, number>;
  for (const key of [
    "win_rate",
    "standard_error",
    "discrete_win_rate",
    "n_wins",
    "n_wins_base",
    "n_draws",
    "n_total",
    "avg_length",
  ])
    assert.equal(a[key], m[key], key);
  assert.equal(a.length_controlled_winrate, m.length_controlled_winrate);

  const text = runDno(...args);
  assert.match(text.stdout, /6 prompts, 5 judged, 1 failed/);
  assert.match(text.stdout, /^win_rate\s+70\.00 {2}\(95% bootstrap CI /m);
});

test("dno eval without a mode, or responses without baseline or oracle, says what to give", () => {
  assert.match(
    runDno("eval").stderr,
    /give --alpaca-annotations FILE, or --responses FILE \(or --model DIR\) with --baseline FILE \(or --baseline-model DIR\) and --oracle CONFIG/,
  );
  assert.match(runDno("eval", "--responses", "model.jsonl").stderr, /give the baseline: --baseline FILE/);
  assert.match(
    runDno("eval", "--responses", "model.jsonl", "--baseline", "base.jsonl").stderr,
    /give --oracle CONFIG/,
  );
  assert.match(
    runDno("eval", "--alpaca-annotations", "x", "--bootstrap", "0").stderr,
    /--bootstrap must be an integer in \[1, 1000000\]/,
  );
});
