import assert from "node:assert/strict";
import { test } from "node:test";
import { type Candidate, type Pair, scorePairs, winRatePairs } from "../src/core/pairs.js";
import {
  conditionPrompt,
  DEFAULT_GOAL_TEMPLATES,
  goalOf,
  goalTemplateProblem,
  relabelWithGoals,
} from "../src/core/reward-augmented.js";

const c = (
  id: string,
  source: Candidate["source"],
  score: number | null,
  winRate: number | null = null,
): Candidate => ({
  id,
  source,
  score,
  winRate,
});
const byScore = (x: Candidate) => x.score ?? null;
const byWinRate = (x: Candidate) => x.winRate ?? null;
const show = (pairs: Pair[]) => pairs.map((p) => `${p.goal}: ${p.chosen}>${p.rejected}`);

test("each judged pair becomes two goal-conditioned pairs, each response the positive for its own score", () => {
  const candidates = [c("gold", "teacher", 6), c("s1", "student", 3), c("s2", "student", 5)];
  const pairs = scorePairs("p", candidates, { pairsPerPrompt: 2 }, 1, 1);
  assert.deepEqual(
    pairs.map((p) => `${p.chosen}>${p.rejected}`),
    ["gold>s1", "s2>s1"],
  );
  const out = relabelWithGoals(pairs, candidates, byScore, { decimals: 0 });
  assert.deepEqual(show(out), ["6: gold>s1", "3: s1>gold", "5: s2>s1", "3: s1>s2"]);
  const reversed = out[1]!;
  assert.deepEqual(
    [reversed.chosenSource, reversed.rejectedSource, reversed.margin],
    ["student", "teacher", -3],
  );
});

test("win-rate estimates are rounded into goals; the soft label flips with the pair", () => {
  const candidates = [
    c("s0", "student", null, 0.875),
    c("s1", "student", null, 0.25),
    c("s2", "student", null, 0.5),
  ];
  const pairs = winRatePairs("p", candidates, { pairsPerPrompt: 1 }, 1, 1);
  assert.deepEqual(
    pairs.map((p) => `${p.chosen}>${p.rejected}`),
    ["s0>s1"],
  );
  const out = relabelWithGoals(pairs, candidates, byWinRate, { decimals: 1 });
  assert.deepEqual(show(out), ["0.9: s0>s1", "0.3: s1>s0"]);
  assert.ok(Math.abs(out[0]!.target! + out[1]!.target! - 1) < 1e-15);
  assert.equal(out[1]!.margin, -0.625);
});

test("a pair keeps only its forward copy when the goals coincide or the loser has no value", () => {
  const hand: Pair = {
    promptId: "p",
    chosen: "a",
    rejected: "b",
    chosenSource: "student",
    rejectedSource: "student",
    rule: "win-rate",
    margin: 0.04,
    target: null,
    iteration: 1,
  };
  const close = [c("a", "student", null, 0.64), c("b", "student", null, 0.6)];
  assert.deepEqual(show(relabelWithGoals([hand], close, byWinRate, { decimals: 1 })), ["0.6: a>b"]);
  const defect = [c("a", "student", 5), { ...c("b", "student", null), defect: true }];
  assert.deepEqual(show(relabelWithGoals([{ ...hand, rule: "score" }], defect, byScore, { decimals: 0 })), [
    "5: a>b",
  ]);
  assert.throws(
    () => relabelWithGoals([hand], [c("a", "student", null)], byWinRate, { decimals: 1 }),
    /no candidate/,
  );
});

test("the goal is written into the prompt template, or into a system message", () => {
  assert.equal(goalOf(0.949, { decimals: 1 }), 0.9);
  assert.deepEqual(
    conditionPrompt({ kind: "prefix", template: "<goal {goal}> {prompt}" }, "rev abc=", 1, { decimals: 1 }),
    { user: "<goal 1.0> rev abc=" },
  );
  assert.deepEqual(
    conditionPrompt({ kind: "prefix", template: "You are rated {goal}/6.\n{prompt}" }, "Hi", 6, {
      decimals: 0,
    }),
    { user: "You are rated 6/6.\nHi" },
  );
  assert.deepEqual(
    conditionPrompt({ kind: "system", template: DEFAULT_GOAL_TEMPLATES.system }, "Hi {goal}", 5, {
      decimals: 0,
    }),
    { user: "Hi {goal}", system: "Answer at quality 5." },
  );
});

test("a template's placeholders are checked against its conditioning", () => {
  assert.equal(goalTemplateProblem("prefix", DEFAULT_GOAL_TEMPLATES.prefix), undefined);
  assert.equal(goalTemplateProblem("system", DEFAULT_GOAL_TEMPLATES.system), undefined);
  assert.match(goalTemplateProblem("prefix", "goal {goal}")!, /must contain \{prompt\}/);
  assert.match(goalTemplateProblem("system", "{goal}: {prompt}")!, /must not contain \{prompt\}/);
  assert.match(goalTemplateProblem("system", "be good")!, /must contain \{goal\}/);
});
