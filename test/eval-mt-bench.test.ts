/**
 * MT-Bench: FastChat's file formats (test/fixtures/mt-bench, hand-written), the [[rating]] parser, the
 * means with standard errors, and `dno eval --mt-bench` against the fake OpenAI judge server and a
 * programmatic judge module.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { formatPython } from "../src/eval/judge-prompts.js";
import { parseRating, readMtBenchPrompts, readMtBenchQuestions } from "../src/eval/mt-bench.js";
import { startFakeJudge } from "./oracle-fake-judge.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const fixture = (name: string) =>
  fileURLToPath(new URL(`../../test/fixtures/mt-bench/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "dno-mt-bench-"));

function dno(args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const close = (a: number | null, b: number) => a !== null && Math.abs(a - b) < 1e-12;

test("[[rating]] is read as FastChat reads it; anything else is a failure, never a score", () => {
  assert.equal(parseRating("Fine answer. Rating: [[7]]"), 7);
  assert.equal(parseRating("Rating: [[8.5]] and later [[2]]"), 8.5);
  assert.equal(parseRating("no double brackets, rating [6]"), 6);
  assert.match(String(parseRating("Rating: [[11]]")), /outside 1-10/);
  assert.match(String(parseRating("Rating: [[0]]")), /outside 1-10/);
  assert.match(String(parseRating("I would say seven.")), /no \[\[rating\]\]/);
});

test("FastChat judge prompt files and Python format fields", () => {
  const prompts = readMtBenchPrompts(fixture("judge_prompts.jsonl"));
  assert.equal(prompts["single-math-v1"].system, "You grade answers against a reference.");
  assert.equal(
    formatPython(prompts["single-v1"].template, { question: "Q?", answer: "A." }, "t"),
    "QUESTION: Q?\nANSWER: A.\nEnd with [[rating]] from 1 to 10.",
  );
  assert.equal(formatPython("{{x}} {y}", { y: "1" }, "t"), "{x} 1");
  assert.throws(() => formatPython("{z}", { y: "1" }, "where"), /where: the template uses \{z\}/);
  const bad = join(dir, "prompts.jsonl");
  writeFileSync(
    bad,
    `${readFileSync(fixture("judge_prompts.jsonl"), "utf8").split("\n").slice(1).join("\n")}`,
  );
  assert.throws(() => readMtBenchPrompts(bad), /no judge prompt named "single-v1"/);
  const questions = readMtBenchQuestions(fixture("question.jsonl"));
  assert.deepEqual(
    questions.map((q) => [q.question_id, q.category, q.turns.length]),
    [
      [901, "writing", 2],
      [902, "math", 2],
      [903, "reasoning", 2],
      [904, "roleplay", 2],
    ],
  );
});

test("existing FastChat judgments: means per turn, overall and per category with standard errors", async () => {
  const args = [
    "eval",
    "--mt-bench",
    fixture("question.jsonl"),
    "--judgments",
    fixture("model_judgment.jsonl"),
  ];
  const several = await dno(args);
  assert.equal(several.code, 1);
  assert.match(
    several.stderr,
    /judgments of several models \(tiny-chat, other-chat\); pick one with --judged-model/,
  );
  const r = await dno([...args, "--judged-model", "tiny-chat", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(s), ["turn1", "turn2", "overall", "categories", "failed"]);
  // Turn 1: 7, 9, 2 (the -1 is a failure): mean 6, squared deviations 26, var 13, se sqrt(13 / 3).
  assert.ok(close(s.turn1.mean, 6) && close(s.turn1.se, Math.sqrt(13 / 3)) && s.turn1.n === 3);
  // Turn 2: 5, 8, 1, 6: mean 5, squared deviations 26, var 26 / 3, se sqrt(26 / 12).
  assert.ok(close(s.turn2.mean, 5) && close(s.turn2.se, Math.sqrt(26 / 12)));
  assert.ok(close(s.overall.mean, 38 / 7) && s.overall.n === 7);
  assert.deepEqual(
    Object.fromEntries(Object.entries(s.categories).map(([c, m]) => [c, (m as { mean: number }).mean])),
    { writing: 6, math: 8.5, reasoning: 1.5, roleplay: 6 },
  );
  assert.equal(s.categories.roleplay.se, null, "one score has no standard error");
  assert.equal(s.failed, 1);
  const text = await dno([...args, "--judged-model", "tiny-chat"]);
  assert.match(text.stdout, /^turn 1\s+6\.00 ± 2\.08 {2}\(n = 3\)$/m);
});

test("dno eval --mt-bench grades both turns with the fake judge, reference-guided for math and reasoning", async () => {
  const judge = await startFakeJudge();
  try {
    writeFileSync(
      join(dir, "judge.yaml"),
      `kind: llm-judge\nbaseUrl: ${judge.baseUrl}\nmodel: fake-judge\ntimeoutMs: 5000\nretryBaseMs: 5\nmaxRetries: 1\n`,
    );
    // A fifth question whose judge answers are prose without a rating: both its turns fail.
    const questions = join(dir, "questions.jsonl");
    writeFileSync(
      questions,
      `${readFileSync(fixture("question.jsonl"), "utf8")}{"question_id": 905, "category": "stem", "turns": ["Why is the sky blue? fault=garbage", "And at sunset?"]}\n`,
    );
    const answers = join(dir, "answers.jsonl");
    writeFileSync(
      answers,
      `${readFileSync(fixture("model_answer.jsonl"), "utf8")}{"question_id": 905, "model_id": "tiny-chat", "choices": [{"index": 0, "turns": ["Rayleigh scattering. (q=8)", "Longer path. (q=8)"]}]}\n`,
    );
    const out = join(dir, "judgments.jsonl");
    const r = await dno([
      "eval",
      "--mt-bench",
      questions,
      "--answers",
      answers,
      "--oracle",
      "judge.yaml",
      "--judgments-out",
      out,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    // The fake rates each answer by its q: turn 1 7, 9, 2, 6; turn 2 5, 8, 1, 6; question 905 fails.
    assert.ok(close(s.turn1.mean, 6) && s.turn1.n === 4);
    assert.ok(close(s.turn2.mean, 5) && s.turn2.n === 4);
    assert.equal(s.failed, 2);
    assert.equal(s.categories.stem.n, 0);
    assert.equal(s.categories.stem.mean, null);
    assert.match(
      r.stderr,
      /2 judgments failed and are not scored \(first: question 905 turn 1: no \[\[rating\]\]/,
    );
    const judgments = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const prompt = (id: number, turn: number) =>
      judgments.find((j) => j.question_id === id && j.turn === turn);
    assert.deepEqual(prompt(902, 1).judge, ["fake-judge", "single-math-v1"]);
    assert.deepEqual(prompt(903, 2).judge, ["fake-judge", "single-math-v1-multi-turn"]);
    assert.deepEqual(prompt(901, 2).judge, ["fake-judge", "single-v1-multi-turn"]);
    assert.match(prompt(902, 2).user_prompt, /<turn_2_reference_answer>\n300 km \/ 80 km\/h = 3\.75 h/);
    assert.equal(prompt(905, 1).score, -1);
    // The judgments file it wrote is FastChat's: read back, it gives the same summary.
    const again = await dno(["eval", "--mt-bench", questions, "--judgments", out, "--json"]);
    assert.deepEqual(JSON.parse(again.stdout), s);
  } finally {
    await judge.close();
  }
});

test("MT-Bench with a programmatic judge; a reference-guided question without a reference is refused", async () => {
  writeFileSync(
    join(dir, "judge.mjs"),
    "export function judge(system, messages) {\n" +
      "  const qs = [...messages[0].content.matchAll(/q=(\\d+)/g)].map((m) => m[1]);\n" +
      '  return "Rating: [[" + qs.at(-1) + "]]";\n}\n',
  );
  writeFileSync(join(dir, "programmatic.yaml"), "kind: programmatic\nmodule: judge.mjs\n");
  const r = await dno([
    "eval",
    "--mt-bench",
    fixture("question.jsonl"),
    "--answers",
    fixture("model_answer.jsonl"),
    "--oracle",
    "programmatic.yaml",
    "--judge-prompts",
    fixture("judge_prompts.jsonl"),
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.ok(close(s.overall.mean, (7 + 9 + 2 + 6 + 5 + 8 + 1 + 6) / 8) && s.failed === 0);

  const noReference = join(dir, "no-reference.jsonl");
  writeFileSync(
    noReference,
    '{"question_id": 1, "category": "coding", "turns": ["Reverse a list in Python."]}\n',
  );
  const refused = await dno([
    "eval",
    "--mt-bench",
    noReference,
    "--answers",
    fixture("model_answer.jsonl"),
    "--oracle",
    "programmatic.yaml",
  ]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /question 1 \(coding\) is graded against a reference answer/);
});
