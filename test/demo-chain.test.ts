import assert from "node:assert/strict";
import { test } from "node:test";
import {
  chainAnswer,
  chainPreference,
  chainPrompt,
  chainTeacher,
  DEFAULT_CHAIN,
  isCorrect,
  parseChain,
  randomChains,
  solve,
} from "../src/demo/chain.js";
import { score } from "../src/demo/chain-oracle.js";

test("a chain's steps, answer and outcome check", () => {
  const chain = parseChain("chain 3+4-8+5=")!;
  assert.deepEqual(chain, {
    start: 3,
    ops: [
      { op: "+", digit: 4 },
      { op: "-", digit: 8 },
      { op: "+", digit: 5 },
    ],
  });
  assert.equal(chainPrompt(chain), "chain 3+4-8+5=");
  assert.equal(solve(chain), "3+4=7;7-8=9;9+5=4");
  assert.equal(chainAnswer(chain), 4);
  // a slip in step 2 is carried on: the answer is off by one
  assert.equal(solve(chain, 1), "3+4=7;7-8=0;0+5=5");
  const p = "chain 3+4-8+5=";
  assert.ok(isCorrect(p, "3+4=7;7-8=9;9+5=4"));
  assert.ok(isCorrect(p, "wrong steps=4"), "only the answer is checked");
  assert.ok(!isCorrect(p, "3+4=7;7-8=0;0+5=5"));
  assert.ok(!isCorrect(p, "3+4=7;7-8=9;"), "an unfinished chain has no answer");
  assert.ok(!isCorrect("rev abc=", "4"));
  assert.equal(parseChain("chain 3+=4"), null);
  assert.deepEqual(score(p, ["3+4=7;7-8=9;9+5=4", "x=5"]), [1, 0]);
  assert.equal(chainPreference(p, "a=4", "a=5"), 1);
  assert.equal(chainPreference(p, "a=5", "a=6"), 0.5);
});

test("random chains are distinct and seeded; the teacher slips on about 30% of them", () => {
  const chains = randomChains(1, 2000, DEFAULT_CHAIN);
  assert.equal(new Set(chains.map(chainPrompt)).size, 2000);
  assert.deepEqual(randomChains(1, 5, DEFAULT_CHAIN), chains.slice(0, 5));
  const wrong = chains.filter((c) => !isCorrect(chainPrompt(c), chainTeacher(c, 1, DEFAULT_CHAIN))).length;
  assert.ok(Math.abs(wrong / 2000 - 0.3) < 0.03, `${wrong} wrong`);
  assert.equal(chainTeacher(chains[0]!, 1, DEFAULT_CHAIN), chainTeacher(chains[0]!, 1, DEFAULT_CHAIN));
});
