import assert from "node:assert/strict";
import { test } from "node:test";
import { isDefective, repeatedNgramFraction } from "../src/core/defects.js";
import {
  type Candidate,
  type Pair,
  pairComposition,
  scorePairs,
  spinPairs,
  winRatePairs,
} from "../src/core/pairs.js";
import { PAPER_REPLAY_FRACTIONS, withReplay } from "../src/core/replay.js";
import { preferencesFromScores, winRateEstimates } from "../src/core/winrate.js";

const gold = (score: number | null): Candidate => ({ id: "gold", source: "teacher", score });
const s = (id: string, score: number | null, defect = false): Candidate => ({
  id,
  source: "student",
  score,
  defect,
});
const ids = (pairs: Pair[]) => pairs.map((p) => `${p.chosen}>${p.rejected}`);

test("score rule: a teacher positive needs a 2-point margin, a student positive 1 point", () => {
  // gold 6 over students at 5 is only a 1-point margin: no pair; s1 (5) over s2 (5) has no margin.
  assert.deepEqual(scorePairs("p", [gold(6), s("s1", 5), s("s2", 5)], {}, 1, 1), []);
  // with a student at 4, gold (6) beats it by 2.
  assert.deepEqual(ids(scorePairs("p", [gold(6), s("s1", 5), s("s3", 4)], {}, 1, 1)), ["gold>s3"]);
  // a student positive at 5 needs only 1 point over the gold's 4.
  const pairs = scorePairs("p", [gold(4), s("s1", 5), s("s2", 5)], {}, 1, 1);
  assert.equal(pairs.length, 1);
  assert.equal(pairs[0]!.rejected, "gold");
  assert.deepEqual(
    [pairs[0]!.chosenSource, pairs[0]!.rejectedSource, pairs[0]!.margin],
    ["student", "teacher", 1],
  );
  // options given as undefined keep the paper's defaults
  assert.deepEqual(
    ids(
      scorePairs("p", [gold(6), s("s1", 5), s("s3", 4)], { margin: undefined, minPositive: undefined }, 1, 1),
    ),
    ["gold>s3"],
  );
  // nothing scores 5 or 6: no positive.
  assert.deepEqual(scorePairs("p", [gold(4), s("s1", 4), s("s2", 1)], {}, 1, 1), []);
  // more pairs per prompt: best positive first, each against the lowest admissible negatives.
  assert.deepEqual(
    ids(scorePairs("p", [gold(6), s("s1", 5), s("s2", 3), s("s3", 4)], { pairsPerPrompt: 3 }, 1, 1)),
    ["gold>s2", "gold>s3", "s1>s2"],
  );
});

test("score rule: defects are automatic negatives and never positives; failed scores are skipped", () => {
  const c = [gold(5), s("s1", 6, true), s("s2", null), s("s3", 5)];
  // s1 scored 6 but is degenerate: gold (5) over it although the margin is negative.
  assert.deepEqual(ids(scorePairs("p", c, {}, 1, 1)), ["gold>s1"]);
  assert.deepEqual(ids(scorePairs("p", [gold(6), s("s2", null)], {}, 1, 1)), []);
});

test("score rule: DNO-Restrictive admits only teacher positives", () => {
  const c = [gold(4), s("s1", 6), s("s2", 2)];
  assert.deepEqual(ids(scorePairs("p", c, {}, 1, 1)), ["s1>s2"]);
  assert.deepEqual(ids(scorePairs("p", c, { positiveSources: ["teacher"] }, 1, 1)), []);
});

test("ties are broken by the seed, deterministically", () => {
  const c = [gold(6), s("a", 2), s("b", 2), s("c", 2), s("d", 2), s("e", 2)];
  const bySeed = (seed: number) => scorePairs("p", c, {}, seed, 1)[0]!.rejected;
  assert.equal(bySeed(3), bySeed(3));
  const seen = new Set(Array.from({ length: 20 }, (_, k) => bySeed(k)));
  assert.ok(seen.size > 1, "different seeds should break the tie differently");
});

test("win-rate rule: large margins on r^ with configurable thresholds, soft targets recorded", () => {
  // candidates 0..2 are samples of pi_t, 3 is the gold response.
  const pref = [
    [0.5, 0.9, 0.8, 0.4],
    [0.1, 0.5, 0.6, 0.2],
    [0.2, 0.4, 0.5, 0.3],
    [0.6, 0.8, 0.7, 0.5],
  ];
  const r = winRateEstimates(pref, { opponents: [0, 1, 2] });
  const expected = [(0.9 + 0.8) / 2, (0.1 + 0.6) / 2, (0.2 + 0.4) / 2, (0.6 + 0.8 + 0.7) / 3];
  for (const [i, v] of r.entries()) assert.ok(Math.abs(v! - expected[i]!) < 1e-15, `r^[${i}]`);
  const c: Candidate[] = r.map((winRate, i) => ({
    id: `y${i}`,
    source: i === 3 ? "teacher" : "student",
    winRate,
  }));
  const pairs = winRatePairs("p", c, {}, 1, 2);
  assert.deepEqual(ids(pairs), ["y0>y2"]);
  assert.ok(Math.abs(pairs[0]!.target! - 1 / (1 + Math.exp(-(0.85 - 0.3)))) < 1e-15);
  assert.equal(pairs[0]!.iteration, 2);
  assert.deepEqual(ids(winRatePairs("p", c, { margin: 0.6, studentMargin: 0.6 }, 1, 2)), []);
});

test("winRateEstimates: with and without the self term, failed judgments skipped", () => {
  const pref = [
    [0.5, 1, null],
    [0, 0.5, 0.5],
    [null, 0.5, 0.5],
  ];
  assert.deepEqual(winRateEstimates(pref), [1, 0.25, 0.5]);
  assert.deepEqual(winRateEstimates(pref, { includeSelf: true }), [0.75, 1 / 3, 0.5]);
  assert.deepEqual(winRateEstimates(pref, { opponents: [2] }), [null, 0.5, null]);
  assert.deepEqual(preferencesFromScores([5, 3, null, 5]), [
    [0.5, 1, null, 0.5],
    [0, 0.5, null, 0],
    [null, null, 0.5, null],
    [0.5, 1, null, 0.5],
  ]);
});

test("spin pairs put the gold response over the policy's samples", () => {
  const pairs = spinPairs("p", [s("a", 6), gold(2), s("b", 1)], 5, 1, 2);
  assert.deepEqual(
    pairs.map((p) => p.chosen),
    ["gold", "gold"],
  );
  assert.deepEqual(pairs.map((p) => p.rejected).sort(), ["a", "b"]);
  assert.equal(pairs[0]!.rule, "spin");
});

test("pair composition counts teacher/student provenance (the paper's Table 2)", () => {
  const pairs = [
    ...scorePairs("p1", [gold(6), s("a", 3)], {}, 1, 1),
    ...scorePairs("p2", [gold(3), s("a", 6)], {}, 1, 1),
    ...scorePairs("p3", [gold(3), s("a", 6), s("b", 1)], {}, 1, 1),
  ];
  assert.deepEqual(pairComposition(pairs), {
    total: 3,
    teacher_over_student: 1,
    student_over_teacher: 1,
    student_over_student: 1,
    teacher_over_teacher: 0,
  });
});

test("replay adds 30% of t-1's and 15% of t-2's fresh pairs, seeded", () => {
  const mk = (iteration: number, n: number): Pair[] =>
    Array.from({ length: n }, (_, i) => ({
      promptId: `p${iteration}-${i}`,
      chosen: "a",
      rejected: "b",
      chosenSource: "student",
      rejectedSource: "student",
      rule: "score",
      margin: 2,
      target: null,
      iteration,
    }));
  const fresh = mk(3, 20);
  const prev = [...mk(2, 30), { ...mk(1, 1)[0]!, replayedFrom: 1 }];
  const all = withReplay(fresh, [prev, mk(1, 30)], PAPER_REPLAY_FRACTIONS, 9, 3);
  assert.equal(all.length, 20 + 6 + 3);
  assert.equal(all.filter((p) => p.replayedFrom === 2).length, 6);
  assert.equal(all.filter((p) => p.replayedFrom === 1).length, 3);
  assert.equal(new Set(all.map((p) => p.promptId)).size, all.length, "sampled without replacement");
  assert.deepEqual(withReplay(fresh, [prev, mk(1, 30)], PAPER_REPLAY_FRACTIONS, 9, 3), all);
  assert.notDeepEqual(withReplay(fresh, [prev, mk(1, 30)], PAPER_REPLAY_FRACTIONS, 10, 3), all);
  // a small history gives what it has
  assert.equal(withReplay(fresh, [mk(2, 2)], [0.5], 9, 3).length, 22);
});

test("defect detection flags repeated n-gram loops", () => {
  assert.equal(repeatedNgramFraction(["a", "b", "c", "d"], 2), 0);
  assert.equal(repeatedNgramFraction(["a", "a", "a", "a", "a"], 2), 0.75);
  assert.equal(isDefective("The capital of France is Paris, a city on the Seine."), false);
  assert.equal(isDefective("I think so. I think so. I think so. I think so. I think so."), true);
  assert.equal(isDefective([7, 7, 7, 7, 7, 7, 7, 7]), true);
  assert.equal(isDefective("no no no"), false, "too short to judge");
});
