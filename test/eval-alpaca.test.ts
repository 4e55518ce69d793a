import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  alpacaMetrics,
  isExtremeLengthCorrection,
  readAlpacaAnnotations,
  readInstructionDifficulty,
} from "../src/eval/alpaca.js";

const dno = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "dno-eval-"));

function writeJson(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof value === "string" ? value : JSON.stringify(value));
  return file;
}

function runDno(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [dno, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Model (output_2) lengths 10..60 and 71 characters, baseline (output_1) 25 each.
const preferences = [2, 2, 1, 1.5, 0, null, 1.75];
const handFixture = preferences.map((preference, i) => ({
  instruction: `instruction ${i}`,
  output_1: "b".repeat(25),
  output_2: "m".repeat(i === 6 ? 71 : 10 * (i + 1)),
  preference,
  generator_1: "baseline",
  generator_2: "model",
}));

test("leaderboard metrics of a hand-computed annotation file", () => {
  const { metrics } = alpacaMetrics(readAlpacaAnnotations(writeJson("hand.json", handFixture)));
  // Judged outcomes (missing dropped, draws 1.5 and 0 as 0.5): 1, 1, 0, 0.5, 0.5, 0.75 -> mean 3.75 / 6.
  assert.ok(Math.abs(metrics.win_rate - 62.5) < 1e-12);
  // Squared deviations from 0.625: 2 * 0.140625 + 0.390625 + 3 * 0.015625 = 0.71875; var 0.14375 (n - 1 = 5).
  assert.ok(Math.abs(metrics.standard_error - 100 * Math.sqrt(0.14375 / 6)) < 1e-12);
  assert.equal(metrics.n_wins, 3);
  assert.equal(metrics.n_wins_base, 1);
  assert.equal(metrics.n_draws, 2);
  assert.equal(metrics.n_total, 6);
  // Rounded verdicts: 1, 1, 0, draw, draw, 1 (1.75 rounds to a win): 4 / 6.
  assert.ok(Math.abs(metrics.discrete_win_rate - 400 / 6) < 1e-12);
  // All model outputs count, judged or not: (10 + 20 + 30 + 40 + 50 + 60 + 71) / 7 = 40.14 -> 40.
  assert.equal(metrics.avg_length, 40);
  assert.ok(metrics.length_controlled_winrate! > 0 && metrics.length_controlled_winrate! < 100);
});

test("a record without a preference field is a missing judgment, as pandas reads it", () => {
  const { preference: _, ...noField } = handFixture[0]!;
  const file = writeJson("nofield.json", [noField, ...handFixture.slice(1)]);
  const { metrics } = alpacaMetrics(readAlpacaAnnotations(file));
  // Judged: 1, 0, 0.5, 0.5, 0.75 (the first and the null one left out).
  assert.equal(metrics.n_total, 5);
  assert.ok(Math.abs(metrics.win_rate - 55) < 1e-12);
});

test("LC is 50 by construction when the model is its own baseline", () => {
  const selfPlay = handFixture.map((r) => ({ ...r, generator_2: "baseline" }));
  const { metrics, lengthControl } = alpacaMetrics(readAlpacaAnnotations(writeJson("self.json", selfPlay)));
  assert.equal(lengthControl, "baseline-is-model");
  assert.equal(metrics.length_controlled_winrate, 50);
});

test("dno eval --alpaca-annotations --json prints exactly the leaderboard keys", () => {
  const r = runDno("eval", "--alpaca-annotations", writeJson("cli.json", handFixture), "--json");
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, number>;
  assert.deepEqual(Object.keys(out), [
    "win_rate",
    "standard_error",
    "n_wins",
    "n_wins_base",
    "n_draws",
    "n_total",
    "discrete_win_rate",
    "avg_length",
    "length_controlled_winrate",
    "lc_standard_error",
  ]);
  assert.equal(out.win_rate, 62.5);
  assert.equal(out.n_total, 6);
  const text = runDno("eval", "--alpaca-annotations", join(dir, "cli.json"));
  assert.match(text.stdout, /^win_rate\s+62\.50$/m);
  assert.match(text.stdout, /^n_draws\s+2$/m);
});

test("malformed annotation files fail with the file, the record index and the field", () => {
  const cases: [string, unknown, RegExp][] = [
    ["not-json.json", "[{", /not-json\.json: invalid JSON/],
    ["object.json", { instruction: "x" }, /object\.json: expected a JSON array of annotation records/],
    ["empty.json", [], /empty\.json: no annotation records/],
    [
      "missing.json",
      [handFixture[0], { instruction: "q", output_1: "a", preference: 2 }],
      /missing\.json: record 1: output_2: /,
    ],
    [
      "range.json",
      [handFixture[0], handFixture[1], { ...handFixture[2], preference: 3 }],
      /range\.json: record 2: preference: expected a number in \[1, 2\], 0 \(a draw\) or null/,
    ],
    [
      "typo.json",
      handFixture.map(({ preference, ...r }) => ({ ...r, preferences: preference })),
      /typo\.json: no record has a "preference" field/,
    ],
    [
      "models.json",
      [handFixture[0], { ...handFixture[1], generator_2: "other" }],
      /models\.json: records hold several models \(generator_2: model, other\)/,
    ],
  ];
  for (const [name, content, message] of cases) {
    const file = writeJson(name, content);
    assert.throws(() => readAlpacaAnnotations(file), message);
    const r = runDno("eval", "--alpaca-annotations", file);
    assert.equal(r.status, 1);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("instruction difficulty is read from AlpacaEval's CSV by record position", () => {
  const csv = join(dir, "difficulty.csv");
  writeFileSync(csv, ",instruction_difficulty\n1,0.5\n0,-1.25\n");
  assert.deepEqual(readInstructionDifficulty(csv, 2), [-1.25, 0.5]);
  assert.throws(
    () => readInstructionDifficulty(csv, 3),
    /difficulty\.csv: no instruction_difficulty for record 2/,
  );
  writeFileSync(csv, ",instruction_difficulty\n0,abc\n");
  assert.throws(
    () => readInstructionDifficulty(csv, 1),
    /difficulty\.csv:2: expected "index,instruction_difficulty"/,
  );
});

test("AlpacaEval's extreme-change warning rule", () => {
  // Raw 20%: warn below min(15, 10) = 10 or above max(40, 30) = 40.
  assert.equal(isExtremeLengthCorrection(20, 10.5), false);
  assert.equal(isExtremeLengthCorrection(20, 9.5), true);
  assert.equal(isExtremeLengthCorrection(20, 39.5), false);
  assert.equal(isExtremeLengthCorrection(20, 40.5), true);
});

interface LeaderboardFixture {
  source: string;
  generator_1: string;
  generator_2: string;
  leaderboard: Record<string, number>;
  records: [number | null, number, number][];
}

for (const model of ["FuseChat-Llama-3.2-1B-Instruct", "FuseChat-Llama-3.1-8B-Instruct"]) {
  test(`AlpacaEval 2.0's published leaderboard row for ${model} is reproduced`, () => {
    const fixture = JSON.parse(
      readFileSync(
        fileURLToPath(new URL(`../../test/fixtures/alpaca-eval/${model}.json`, import.meta.url)),
        "utf8",
      ),
    ) as LeaderboardFixture;
    const records = fixture.records.map(([preference, baselineLength, modelLength], i) => ({
      instruction: `instruction ${i}`,
      output_1: "x".repeat(baselineLength),
      output_2: "x".repeat(modelLength),
      preference,
      generator_1: fixture.generator_1,
      generator_2: fixture.generator_2,
    }));
    const { metrics } = alpacaMetrics(records);
    const expected = fixture.leaderboard;
    for (const key of ["win_rate", "standard_error", "discrete_win_rate"] as const)
      assert.ok(
        Math.abs(metrics[key] - expected[key]!) < 1e-9,
        `${key}: ${metrics[key]} vs ${expected[key]}`,
      );
    for (const key of ["n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"] as const)
      assert.equal(metrics[key], expected[key], key);
    // LC without AlpacaEval's gamed-baseline rows and instruction difficulty (see the README): within a
    // point of the published value, and moved from the raw win rate in the same direction.
    const lc = metrics.length_controlled_winrate!;
    const published = expected.length_controlled_winrate!;
    assert.ok(Math.abs(lc - published) < 1, `LC ${lc} vs published ${published}`);
    assert.equal(Math.sign(lc - metrics.win_rate), Math.sign(published - expected.win_rate!));
  });
}
