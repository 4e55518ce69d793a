import assert from "node:assert/strict";
import { test } from "node:test";
import { evaluateHeadToHead } from "../src/eval/head-to-head.js";
import {
  bootstrapMeanCI,
  charLength,
  discreteWinRate,
  standardErrorOfMean,
  winRateSummary,
} from "../src/eval/winrate.js";

test("winRateSummary counts ties as half and uses the n-1 standard error", () => {
  // 3 wins, 1 loss, 2 ties: (3 + 0 + 1) / 6 = 2/3.
  const s = winRateSummary([1, 1, 1, 0, 0.5, 0.5]);
  assert.equal(s.n, 6);
  assert.equal(s.wins, 3);
  assert.equal(s.losses, 1);
  assert.equal(s.ties, 2);
  assert.ok(Math.abs(s.winRate - 2 / 3) < 1e-15);
  // deviations 1/3 (x3), -2/3, -1/6 (x2): sum of squares 1/3 + 4/9 + 1/18 = 5/6; var = 1/6; se = sqrt(1/36).
  assert.ok(Math.abs(s.standardError - 1 / 6) < 1e-15);
  assert.ok(s.ci[0] < s.winRate && s.winRate < s.ci[1], `ci ${s.ci}`);
  assert.ok(Math.abs(s.discreteWinRate - 2 / 3) < 1e-15);
  // Soft outcomes round to verdicts: 0.7 -> win, 0.2 -> loss, 0.5 stays a draw: (1 + 0 + 0.5) / 3.
  assert.equal(discreteWinRate([0.7, 0.2, 0.5]), 0.5);
});

test("standard error is undefined (NaN) for fewer than two outcomes", () => {
  assert.ok(Number.isNaN(standardErrorOfMean([1])));
  const s = winRateSummary([]);
  assert.ok(Number.isNaN(s.winRate) && Number.isNaN(s.ci[0]));
});

test("bootstrap interval is seeded, and close to the normal interval on a large sample", () => {
  // 0, 1/9, ..., 1 repeated: mean 0.5.
  const outcomes = Array.from({ length: 400 }, (_, i) => (i % 10) / 9);
  const a = bootstrapMeanCI(outcomes, { seed: 3 });
  assert.deepEqual(a, bootstrapMeanCI(outcomes, { seed: 3 }));
  assert.notDeepEqual(a, bootstrapMeanCI(outcomes, { seed: 4 }));
  const se = standardErrorOfMean(outcomes);
  assert.ok(Math.abs(a[0] - (0.5 - 1.96 * se)) < 0.005, `lower ${a[0]}`);
  assert.ok(Math.abs(a[1] - (0.5 + 1.96 * se)) < 0.005, `upper ${a[1]}`);
  // A constant sample has a degenerate interval.
  assert.deepEqual(bootstrapMeanCI([1, 1, 1]), [1, 1]);
});

test("outcomes outside [0, 1] are refused", () => {
  assert.throws(() => winRateSummary([0.5, 2]), /outcome 1 must be in \[0, 1\]/);
});

test("charLength counts code points like Python's len", () => {
  assert.equal(charLength("héllo 🙂"), 7);
});

test("evaluateHeadToHead: rates over judged records, lengths over all records", () => {
  const r = evaluateHeadToHead(
    [
      { preference: 1, modelLength: 10, baselineLength: 10 },
      { preference: 0.5, modelLength: 10, baselineLength: 10 },
      { preference: null, modelLength: 40, baselineLength: 10 },
      { preference: 0, modelLength: 20, baselineLength: 10 },
    ],
    { seed: 1 },
  );
  assert.equal(r.n, 3);
  assert.equal(r.nRecords, 4);
  assert.equal(r.winRate, 0.5);
  assert.equal(r.avgModelLength, 20);
  assert.equal(r.avgBaselineLength, 10);
  assert.ok(r.lengthControlled !== null);
  assert.deepEqual(
    r.ci,
    evaluateHeadToHead(
      [
        { preference: 1, modelLength: 1, baselineLength: 1 },
        { preference: 0.5, modelLength: 1, baselineLength: 1 },
        { preference: 0, modelLength: 1, baselineLength: 1 },
      ],
      { seed: 1 },
    ).ci,
  );
});
