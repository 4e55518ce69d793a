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
  assert.deepEqual(parseAnswer("[dcba]"), { letters: "dcba", style: "square" });
  assert.deepEqual(parseAnswer("(dcba)"), { letters: "dcba", style: "round" });
  assert.deepEqual(parseAnswer("{dcba}"), { letters: "dcba", style: "curly" });
  for (const bad of ["", "dCba", "[dcba)", "[]", "dc ba", "(dc", "((dc))"])
    assert.equal(parseAnswer(bad), null, bad);
  for (const s of STYLES) assert.equal(correctStyle(promptOf("abcd"), render("dcba", s)), s);
  assert.equal(correctStyle(promptOf("abcd"), "dbca"), null);
});

test("the demo oracle: correctness first, brackets beat plain, a cycle among brackets, P + P^T = 1", () => {
  const prefer = demoPreference(DEFAULT_TASK);
  const x = promptOf("hella");
  const right = reverse("hella");
  const answers = [...STYLES.map((s) => render(right, s)), "allhe", "[allhe]", "(al)", "", "{alleh"];
  for (const a of answers) {
    for (const b of answers)
      assert.ok(Math.abs(prefer(x, a, b) + prefer(x, b, a) - 1) < 1e-12, `${a} vs ${b}`);
  }
  const [plain, square, round, curly] = STYLES.map((s) => render(right, s)) as [
    string,
    string,
    string,
    string,
  ];
  assert.equal(prefer(x, plain, "allhe"), 1);
  assert.equal(prefer(x, "allhe", "[allhe]"), 0.5);
  for (const bracket of [square, round, curly])
    assert.equal(prefer(x, bracket, plain), DEFAULT_TASK.beatsPlain);
  const w = DEFAULT_TASK.cycleWin;
  assert.equal(prefer(x, round, square), w);
  assert.equal(prefer(x, curly, round), w);
  assert.equal(prefer(x, square, curly), w);
});

test("style exploitability is 0 at the Nash mixture and beatsPlain - 1/2 when all answers are plain", () => {
  assert.ok(Math.abs(styleExploitability([0, 1, 1, 1], DEFAULT_TASK)) < 1e-12);
  assert.ok(
    Math.abs(styleExploitability([1, 0, 0, 0], DEFAULT_TASK) - (DEFAULT_TASK.beatsPlain - 0.5)) < 1e-12,
  );
  for (const pure of [
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ]) {
    assert.ok(Math.abs(styleExploitability(pure, DEFAULT_TASK) - (DEFAULT_TASK.cycleWin - 0.5)) < 1e-12);
  }
  assert.ok(styleExploitability([0.5, 0.3, 0.2, 0], DEFAULT_TASK) > 0);
});

test("the teacher is wrong on about 30% of prompts, mostly plain, and deterministic per seed", () => {
  const words = randomWords(3, 4000, DEFAULT_TASK);
  assert.equal(new Set(words).size, words.length);
  let wrong = 0;
  const styles = { plain: 0, square: 0, round: 0, curly: 0 };
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
  assert.ok(
    Math.abs(styles.plain / words.length - DEFAULT_TASK.teacherStyles[0]!) < 0.03,
    JSON.stringify(styles),
  );
});
