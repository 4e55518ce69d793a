import assert from "node:assert/strict";
import { test } from "node:test";
import { sigmoidLoss } from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import {
  degreeLoss,
  keyContents,
  rakePhrases,
  removeSpans,
  spoLabels,
  spoSamples,
  withDegreeLoss,
} from "../src/core/spo.js";

const phrases = (text: string) => rakePhrases(text).map(([a, b]) => text.slice(a, b));

test("RAKE: phrases split on stopwords and punctuation, ranked by degree/frequency", () => {
  // "linear diophantine equations" (3 words, degree 3 each: 9) beats "minimal set" (2 + 2 = 4) and "upper bounds".
  const text =
    "Criteria of compatibility of a system of linear Diophantine equations, and upper bounds for a minimal set.";
  assert.deepEqual(phrases(text), [
    "linear Diophantine equations",
    "upper bounds",
    "minimal set",
    "Criteria",
    "compatibility",
    "system",
  ]);
  // a repeated word's degree/frequency: "paris" appears alone twice (deg 1 + 2, freq 2 -> 1.5 each).
  assert.deepEqual(phrases("Paris. Paris france"), ["Paris france", "Paris"]);
});

test("key contents, their removal and the 2K classes of a pair's samples", () => {
  assert.deepEqual(
    keyContents("[kdhb]", { unit: "letters", degrees: 3 }).map(([a]) => a),
    [1, 2, 3, 4],
  );
  assert.equal(
    removeSpans("[kdhb]", [
      [2, 3],
      [4, 5],
    ]),
    "[kh]",
  );
  assert.equal(removeSpans("the big red ball", [[4, 7]]), "the red ball");
  assert.deepEqual(spoLabels(3), ["0", "1", "2", "3", "4", "5"]);

  const options = { degrees: 3, unit: "letters" as const, samplesPerResponse: 3 };
  const samples = spoSamples("[kdhb]", "kdbh", options, Rng.derive(1, "t"));
  // every degree of both responses, chosen as classes 0..2, rejected as 3..5; k letters are gone.
  assert.deepEqual(
    samples.map((s) => s.label),
    [0, 1, 2, 3, 4, 5],
  );
  samples.forEach((s) => {
    const k = s.label % 3;
    const source = s.label < 3 ? "[kdhb]" : "kdbh";
    assert.equal(s.response.length, source.length - k);
    assert.ok([...s.response].every((ch) => source.includes(ch)));
  });
  assert.equal(samples[0]!.response, "[kdhb]");
  assert.equal(samples[3]!.response, "kdbh");
  // the same rng draws give the same samples; a response with one letter offers degrees 0 and 1 only.
  assert.deepEqual(spoSamples("[kdhb]", "kdbh", options, Rng.derive(1, "t")), samples);
  const short = spoSamples("a", "b", { ...options, samplesPerResponse: 2 }, Rng.derive(2));
  assert.deepEqual(
    short.map((s) => s.label),
    [0, 1, 3, 4],
  );
  assert.throws(() => spoSamples("a", "b", { ...options, samplesPerResponse: 4 }, Rng.derive(2)), /1\.\.3/);
});

test("degree loss: cross-entropy over label log-probs; its gradient equals float64 finite differences", () => {
  const rng = Rng.derive(7, "spo-grad");
  const m = 4;
  const C = 6;
  const labels = [0, 5, 2, 3];
  const z = Float64Array.from({ length: m * C }, () => -3 * rng.float() - 0.5);
  const { loss, grad } = degreeLoss(z, labels, C, 0.3);
  // uniform logits cost exactly log C
  assert.ok(Math.abs(degreeLoss(new Float64Array(C), [1], C, 1).loss - Math.log(C)) < 1e-15);
  const h = 1e-6;
  for (let j = 0; j < z.length; j++) {
    const plus = Float64Array.from(z);
    const minus = Float64Array.from(z);
    plus[j]! += h;
    minus[j]! -= h;
    const fd = (degreeLoss(plus, labels, C, 0.3).loss - degreeLoss(minus, labels, C, 0.3).loss) / (2 * h);
    assert.ok(Math.abs(fd - grad[j]!) < 1e-8, `d/dz[${j}]: ${grad[j]} vs ${fd}`);
  }
  assert.ok(loss > 0);
});

test("an objective plus the weighted degree loss: one gradient over pairs and label sequences", () => {
  const rng = Rng.derive(3, "spo-total");
  const n = 3;
  const ref = Float64Array.from({ length: n }, () => -5 * rng.float());
  const refR = Float64Array.from({ length: n }, () => -5 * rng.float());
  const align = (lp: Float64Array) => {
    const r = sigmoidLoss(
      { policyChosen: lp.subarray(0, n), policyRejected: lp.subarray(n), refChosen: ref, refRejected: refR },
      { beta: 0.3 },
    );
    const grad = new Float64Array(2 * n);
    grad.set(r.gradChosen, 0);
    grad.set(r.gradRejected, n);
    return { loss: r.loss, grad };
  };
  const labels = [1, 4];
  const total = withDegreeLoss(align, 2 * n, labels, 6, 0.5);
  const lp = Float64Array.from({ length: 2 * n + 2 * 6 }, () => -6 * rng.float());
  const { loss, grad } = total(lp);
  assert.ok(
    Math.abs(
      loss - (align(lp.subarray(0, 2 * n)).loss + degreeLoss(lp.subarray(2 * n), labels, 6, 0.5).loss),
    ) < 1e-15,
  );
  const h = 1e-6;
  for (let j = 0; j < lp.length; j++) {
    const plus = Float64Array.from(lp);
    const minus = Float64Array.from(lp);
    plus[j]! += h;
    minus[j]! -= h;
    const fd = (total(plus).loss - total(minus).loss) / (2 * h);
    assert.ok(Math.abs(fd - grad[j]!) < 1e-8, `d/dlp[${j}]: ${grad[j]} vs ${fd}`);
  }
  assert.throws(() => total(new Float64Array(5)), /expected 6 \+ 2 x 6/);
});
