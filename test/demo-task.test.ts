import assert from "node:assert/strict";
import { test } from "node:test";
import {
  correctStyle,
  DEFAULT_TASK,
  demoPreference,
  parseAnswer,
  promptOf,
  randomWords,
  render,
  reverse,
  STYLES,
  styleExploitability,
  teacherAnswer,
} from "../src/demo/task.js";

test("answers parse into letters and one of three styles; anything else is malformed", () => {
  assert.deepEqual(parseAnswer("dcba"), { letters: "dcba", style: "plain" });
  assert.deepEqual(parseAnswer("DCBA"), { letters: "dcba", style: "upper" });
  assert.deepEqual(parseAnswer("d.c.b.a"), { letters: "dcba", style: "dotted" });
  for (const bad of ["", "dCba", "d.cba", "d..c", "dc ba", ".d.c"]) assert.equal(parseAnswer(bad), null, bad);
  for (const s of STYLES) assert.equal(correctStyle(promptOf("abcd"), render("dcba", s)), s);
  assert.equal(correctStyle(promptOf("abcd"), "dbca"), null);
});

test("the demo oracle: correctness first, a rock-paper-scissors cycle among correct styles, P + P^T = 1", () => {
  const prefer = demoPreference(DEFAULT_TASK);
  const x = promptOf("hella");
  const right = reverse("hella");
  const answers = [...STYLES.map((s) => render(right, s)), "allhe", "ALLHE", "zz.z", ""];
  for (const a of answers) {
    for (const b of answers)
      assert.ok(Math.abs(prefer(x, a, b) + prefer(x, b, a) - 1) < 1e-12, `${a} vs ${b}`);
  }
  const [plain, upper, dotted] = STYLES.map((s) => render(right, s)) as [string, string, string];
  assert.equal(prefer(x, plain, "allhe"), 1);
  assert.equal(prefer(x, "allhe", "ALLHE"), 0.5);
  const w = DEFAULT_TASK.styleWin;
  assert.equal(prefer(x, upper, plain), w);
  assert.equal(prefer(x, dotted, upper), w);
  assert.equal(prefer(x, plain, dotted), w);
});

test("style exploitability is 0 at the uniform mixture and styleWin - 1/2 at a pure style", () => {
  const w = DEFAULT_TASK.styleWin;
  assert.ok(Math.abs(styleExploitability([1, 1, 1], w)) < 1e-12);
  for (const pure of [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ])
    assert.ok(Math.abs(styleExploitability(pure, w) - (w - 0.5)) < 1e-12);
  assert.ok(styleExploitability([0.5, 0.3, 0.2], w) > 0);
});

test("the teacher is wrong on about 30% of prompts, mostly plain, and deterministic per seed", () => {
  const words = randomWords(3, 4000, DEFAULT_TASK);
  assert.equal(new Set(words).size, words.length);
  let wrong = 0;
  const styles = { plain: 0, upper: 0, dotted: 0 };
  for (const w of words) {
    const gold = teacherAnswer(w, 3, DEFAULT_TASK);
    assert.equal(gold, teacherAnswer(w, 3, DEFAULT_TASK));
    const parsed = parseAnswer(gold);
    assert.ok(parsed, gold);
    styles[parsed.style]++;
    if (parsed.letters !== reverse(w)) {
      wrong++;
      assert.deepEqual([...parsed.letters].sort(), [...w].sort(), "a wrong gold answer is a transposition");
    }
  }
  assert.ok(
    Math.abs(wrong / words.length - DEFAULT_TASK.teacherErrorRate) < 0.03,
    `error rate ${wrong / words.length}`,
  );
  assert.ok(Math.abs(styles.plain / words.length - 0.8) < 0.03, JSON.stringify(styles));
});
