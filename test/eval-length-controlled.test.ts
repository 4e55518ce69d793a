import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import {
  crossValidatedL1Logistic,
  fitL1Logistic,
  type SoftLabelData,
  sigmoid,
  smoothGradient,
} from "../src/eval/glm.js";
import {
  type HeadToHead,
  lengthControlledInterval,
  lengthControlledWinRate,
} from "../src/eval/length-controlled.js";

function syntheticData(n: number, w: number[], seed: number): SoftLabelData {
  const rng = new Rng(seed);
  const d = w.length;
  const x = new Float64Array(n * d);
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let j = 0; j < d; j++) {
      x[i * d + j] = j === d - 1 ? 1 : rng.normal();
      z += x[i * d + j]! * w[j]!;
    }
    // Soft labels equal to the model's own probabilities: the unpenalised optimum is exactly w.
    p[i] = sigmoid(z);
  }
  return { x, features: d, p };
}

test("the L1 fit satisfies the optimality (KKT) conditions", () => {
  const rng = new Rng(11);
  const data = syntheticData(300, [0.8, -0.05, 0.3], 5);
  for (let i = 0; i < data.p.length; i++) data.p[i] = rng.float() < data.p[i]! ? 1 : 0;
  for (const C of [0.01, 0.3, 5]) {
    const w = fitL1Logistic(data, C);
    const g = smoothGradient(data, w, C);
    for (let j = 0; j < w.length; j++) {
      if (w[j] === 0) assert.ok(Math.abs(g[j]!) <= 1 + 1e-7, `C=${C} j=${j}: |g|=${Math.abs(g[j]!)} at 0`);
      else assert.ok(Math.abs(g[j]! + Math.sign(w[j]!)) < 1e-6, `C=${C} j=${j}: g=${g[j]} w=${w[j]}`);
    }
  }
  // A strong enough penalty sets everything to zero.
  assert.deepEqual(Array.from(fitL1Logistic(data, 1e-5)), [0, 0, 0]);
});

test("with soft labels from a known logistic model and a weak penalty the fit recovers it", () => {
  const truth = [-1.2, 0.8, 0.5];
  const w = fitL1Logistic(syntheticData(2000, truth, 1), 1e7);
  for (let j = 0; j < 3; j++) assert.ok(Math.abs(w[j]! - truth[j]!) < 1e-4, `w=${Array.from(w)}`);
});

test("cross-validation prefers weak regularisation when the signal is strong, and is deterministic", () => {
  const data = syntheticData(200, [2, 1], 2);
  const a = crossValidatedL1Logistic(data);
  assert.ok(a.C >= 1, `C=${a.C}`);
  assert.deepEqual(Array.from(a.w), Array.from(crossValidatedL1Logistic(data).w));
});

const equalLengths = (prefs: (number | null)[]): HeadToHead[] =>
  prefs.map((preference) => ({ preference, modelLength: 100, baselineLength: 100 }));

test("LC equals the raw win rate when lengths are equal (up to the L1 shrinkage, known in closed form)", () => {
  // 30 wins, 10 losses, 10 ties, 2 missing: raw win rate (30 + 5) / 50 = 0.7.
  const prefs = [...Array(30).fill(1), ...Array(10).fill(0), ...Array(10).fill(0.5), null, null];
  const weak = lengthControlledWinRate(equalLengths(prefs), { C: 1e8 })!;
  assert.ok(Math.abs(weak.winRate - 0.7) < 1e-6, `LC ${weak.winRate}`);
  assert.equal(weak.nFit, 50);
  assert.equal(weak.coefficients.length, 0);
  // With the cross-validated C the only change is the L1 pull: sigma(w_model) = mean p - 1 / (C n).
  const cv = lengthControlledWinRate(equalLengths(prefs))!;
  assert.ok(Math.abs(cv.winRate - (0.7 - 1 / (cv.C * 50))) < 1e-8, `LC ${cv.winRate} C ${cv.C}`);
  assert.ok(Math.abs(cv.winRate - 0.7) < 0.005);
});

test("LC moves to 50% when the model's wins are explained by length", () => {
  // The model wins (p = 0.9) the 30 prompts where it is 400 characters longer, and loses (p = 0.1) the 10
  // where it is 400 shorter: raw win rate 0.7. Quality-at-equal-length is even: the fit is w_model = 0.
  const records: HeadToHead[] = [
    ...Array.from({ length: 30 }, () => ({ preference: 0.9, modelLength: 900, baselineLength: 500 })),
    ...Array.from({ length: 10 }, () => ({ preference: 0.1, modelLength: 100, baselineLength: 500 })),
  ];
  const lc = lengthControlledWinRate(records)!;
  assert.ok(Math.abs(lc.winRate - 0.5) < 1e-9, `LC ${lc.winRate}`);
  // delta = baseline - model, so longer model responses winning means a negative length weight.
  assert.ok(lc.coefficients.length < 0);
  // deltas -400 (x30), +400 (x10): mean -200, sum of squared deviations 30 * 200^2 + 10 * 600^2 = 4.8e6.
  assert.ok(Math.abs(lc.lengthScale - Math.sqrt(4.8e6 / 39)) < 1e-9, `sd ${lc.lengthScale}`);
});

test("LC keeps a win that does not depend on length", () => {
  // Half the prompts the model is longer, half shorter; it wins 70% of each half: w_length = 0 by symmetry.
  const half = (modelLength: number): HeadToHead[] =>
    Array.from({ length: 20 }, (_, i) => ({ preference: i < 14 ? 1 : 0, modelLength, baselineLength: 500 }));
  const lc = lengthControlledWinRate([...half(800), ...half(200)])!;
  assert.ok(Math.abs(lc.coefficients.length) < 1e-9);
  assert.ok(Math.abs(lc.winRate - (0.7 - 1 / (lc.C * 40))) < 1e-8, `LC ${lc.winRate}`);
});

test("the instruction-difficulty term is fitted and LC averages over every instruction", () => {
  const difficulty = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? -1 : 1));
  const records = difficulty.map((d) => ({
    preference: sigmoid(0.5 + d),
    modelLength: 10,
    baselineLength: 10,
  }));
  const lc = lengthControlledWinRate(records, { instructionDifficulty: difficulty, C: 1e8 })!;
  assert.ok(Math.abs(lc.coefficients.difficulty! - 1) < 1e-5);
  assert.ok(Math.abs(lc.coefficients.model - 0.5) < 1e-5);
  assert.ok(Math.abs(lc.winRate - (sigmoid(-0.5) + sigmoid(1.5)) / 2) < 1e-6);
  assert.throws(
    () => lengthControlledWinRate(records, { instructionDifficulty: [1] }),
    /1 values for 40 records/,
  );
});

test("LC is undefined with fewer than two judgments; preferences outside [0, 1] are refused", () => {
  assert.equal(lengthControlledWinRate(equalLengths([1, null])), null);
  assert.throws(
    () => lengthControlledWinRate(equalLengths([1, 2])),
    /record 1: preference must be in \[0, 1\]/,
  );
});

test("the LC bootstrap interval is seeded and brackets the estimate on a large sample", () => {
  const rng = new Rng(9);
  const records: HeadToHead[] = Array.from({ length: 300 }, () => {
    const baselineLength = 200 + rng.int(800);
    const modelLength = Math.round(baselineLength * (0.5 + 2 * rng.float()));
    const z = 0.4 + Math.tanh((modelLength - baselineLength) / 500);
    return { preference: rng.float() < sigmoid(z) ? 1 : 0, modelLength, baselineLength };
  });
  const fit = lengthControlledWinRate(records)!;
  const a = lengthControlledInterval(records, fit, { seed: 1, resamples: 200 });
  assert.deepEqual(a, lengthControlledInterval(records, fit, { seed: 1, resamples: 200 }));
  assert.notDeepEqual(a, lengthControlledInterval(records, fit, { seed: 2, resamples: 200 }));
  assert.ok(a[0] < fit.winRate && fit.winRate < a[1], `LC ${fit.winRate} CI ${a}`);
  // Roughly the binomial width at n = 300 (the GLM adds some): between 0.5x and 2x of +-1.96 * 0.029.
  const halfWidth = (a[1] - a[0]) / 2;
  assert.ok(halfWidth > 0.028 && halfWidth < 0.12, `half width ${halfWidth}`);
});
