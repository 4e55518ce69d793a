/**
 * Arena-Hard: arena-hard-auto's file formats (test/fixtures/arena-hard, hand-written), the five-level
 * verdict parser and battle weights, the Bradley-Terry fit against hand-computed cases, and
 * `dno eval --arena-hard` against the fake OpenAI judge server.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  arenaBattles,
  arenaPromptFromConfig,
  battlesOf,
  judgeGame,
  markdownCounts,
  parseVerdict,
  readArenaQuestions,
} from "../src/eval/arena-hard.js";
import { type Battle, bootstrapWinRate, eloWinRate, fitBradleyTerry } from "../src/eval/bradley-terry.js";
import { startFakeJudge } from "./oracle-fake-judge.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const fixture = (name: string) =>
  fileURLToPath(new URL(`../../test/fixtures/arena-hard/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "dno-arena-"));

function dno(args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test("verdicts as arena-hard-auto v0.1 reads them, and their battle weights", () => {
  assert.equal(parseVerdict("A is better.\nMy final verdict is: [[A>B]]"), "A>B");
  assert.equal(parseVerdict("[[B>>A]] ... so again [[B>>A]]"), "B>>A");
  assert.equal(parseVerdict("no label at all"), "none");
  assert.match(parseVerdict("[[A>B]] or maybe [[B>A]]"), /conflicting verdicts A>B, B>A/);
  assert.match(parseVerdict("[[A<B]]"), /unknown verdict \[\[A<B\]\]/);
  // Game 1 has the baseline as A, game 2 the model as A; strong verdicts weigh 3.
  assert.deepEqual(battlesOf(["B>A", "A>B"]), [
    { outcome: 1, count: 1 },
    { outcome: 1, count: 1 },
  ]);
  assert.deepEqual(battlesOf(["A>>B", null]), [{ outcome: 0, count: 3 }]);
  assert.deepEqual(battlesOf(["A=B", "B>>A"]), [
    { outcome: 0.5, count: 1 },
    { outcome: 0, count: 3 },
  ]);
  // As Bradley-Terry rows: the baseline is player a (0), the outcome is the baseline's.
  assert.deepEqual(arenaBattles([{ scores: ["B>>A", null] }]), [
    { a: 0, b: 1, outcome: 0 },
    { a: 0, b: 1, outcome: 0 },
    { a: 0, b: 1, outcome: 0 },
  ]);
  assert.deepEqual(markdownCounts("# T\n## U\n1. a\n- b\n**x** and __y__\n```\n# not a header\n```"), {
    headers: 2,
    lists: 2,
    bold: 2,
  });
  assert.deepEqual(
    readArenaQuestions(fixture("question-v2.jsonl")).map((q) => q.id),
    ["a1b2c3d4e5f60718", "0f9e8d7c6b5a4321"],
  );
});

test("arena-hard-auto judge configs (v0.1 and v2.0 field names) drive a game; a missing verdict is asked for once", async () => {
  const seen: string[][] = [];
  const ask = async (system: string, messages: readonly { role: string; content: string }[]) => {
    seen.push([system, ...messages.map((m) => m.content)]);
    return { text: messages.length === 1 ? "Thinking about it." : "Then: [[B>A]]" };
  };
  const v01 = arenaPromptFromConfig(
    { system_prompt: "Judge fairly.", prompt_template: ["Q: {question_1}\nA: {answer_1}\nB: {answer_2}"] },
    "v01.yaml",
  );
  const game = await judgeGame(ask, v01, "Why?", "first", "second");
  assert.equal(game.score, "B>A");
  assert.equal(seen[0]![1], "Q: Why?\nA: first\nB: second");
  assert.equal(seen.length, 2, "asked once more after an answer without a label");
  const v20 = arenaPromptFromConfig({ prompt_template: "{QUESTION}|{ANSWER_A}|{ANSWER_B}" }, "v20.yaml");
  await judgeGame(ask, v20, "Why?", "a", "b");
  assert.equal(seen[2]![1], "Why?|a|b");
  assert.match(seen[2]![0]!, /\[\[A>>B\]\]/, "v2.0 configs keep the system prompt in code: dno's is used");
});

const repeat = (n: number, battle: Battle): Battle[] => Array.from({ length: n }, () => battle);

test("Bradley-Terry on a hand-computed chain: ratings add along the chain", () => {
  // A (0) beats B (1) 3 times in 4; B beats C (2) twice in 3; A and C never meet. The likelihood
  // separates: Elo(A) - Elo(B) = 400 log10 3, Elo(B) - Elo(C) = 400 log10 2, so P(A beats C) = 6/7.
  const battles = [
    ...repeat(3, { a: 0, b: 1, outcome: 1 }),
    { a: 0, b: 1, outcome: 0 },
    ...repeat(2, { a: 1, b: 2, outcome: 1 }),
    { a: 2, b: 1, outcome: 1 },
  ];
  const { elo } = fitBradleyTerry(battles, 3, 2);
  assert.ok(Math.abs(elo[2]! - 1000) < 1e-12);
  assert.ok(Math.abs(elo[1]! - (1000 + 400 * Math.log10(2))) < 1e-6, `B ${elo[1]}`);
  assert.ok(Math.abs(elo[0]! - (1000 + 400 * Math.log10(6))) < 1e-6, `A ${elo[0]}`);
  assert.ok(Math.abs(eloWinRate(elo[0]!, elo[2]!) - 6 / 7) < 1e-9);
  // A tie is half a win: 2 wins, 1 loss and 2 ties is P = 3/5, a difference of 400 log10 1.5.
  const tied = fitBradleyTerry(
    [
      ...repeat(2, { a: 0, b: 1, outcome: 1 }),
      { a: 0, b: 1, outcome: 0 },
      ...repeat(2, { a: 1, b: 0, outcome: 0.5 }),
    ],
    2,
    1,
  );
  assert.ok(Math.abs(tied.elo[0]! - 1000 - 400 * Math.log10(1.5)) < 1e-6);
});

test("Bradley-Terry with style columns: the L2 fit meets its optimality conditions", () => {
  const battles: Battle[] = [];
  for (let i = 0; i < 40; i++) {
    const s = [Math.sin(i), Math.cos(3 * i)];
    battles.push({ a: 0, b: 1, outcome: i % 3 === 0 ? 1 : i % 3 === 1 ? 0 : 0.5, style: s });
  }
  const fit = fitBradleyTerry(battles, 2, 0, { styleDims: 2 });
  // Elo(model) - 1000 = 400 (w1 - w0); under L2 the two player coefficients are opposite (w0 = -w1).
  const w1 = (fit.elo[1]! - 1000) / 800;
  const w = [-w1, w1, ...fit.style];
  const g = w.map((v) => v);
  for (const b of battles) {
    const x = [Math.log(10), -Math.log(10), ...b.style!];
    const z = x.reduce((t, v, j) => t + v * w[j]!, 0);
    const q = 1 / (1 + Math.exp(-z));
    x.forEach((v, j) => {
      g[j]! += 2 * (q - b.outcome) * v;
    });
  }
  for (const v of g) assert.ok(Math.abs(v) < 1e-8, `gradient ${g}`);
});

test("the bootstrap interval is seeded and brackets the fitted win rate", () => {
  const battles = arenaBattles(
    Array.from({ length: 30 }, (_, i) => ({
      scores: [
        i % 4 === 0 ? ("A>B" as const) : ("B>A" as const),
        i % 5 === 0 ? ("A=B" as const) : ("A>>B" as const),
      ],
    })),
  );
  const a = bootstrapWinRate(battles, 2, 1, 0, { seed: 3 });
  assert.deepEqual(a, bootstrapWinRate(battles, 2, 1, 0, { seed: 3 }));
  assert.notDeepEqual(a.ci, bootstrapWinRate(battles, 2, 1, 0, { seed: 4 }).ci);
  assert.ok(a.ci[0] < a.winRate && a.winRate < a.ci[1], `${a.winRate} ${a.ci}`);
  // One model against the baseline: the fitted win rate is the weighted share of battles it won.
  const won = battles.reduce((t, b) => t + (1 - b.outcome), 0) / battles.length;
  assert.ok(Math.abs(a.winRate - won) < 1e-9);
});

test("existing arena-hard-auto judgments: win rate from hand-counted battles", async () => {
  const r = await dno([
    "eval",
    "--arena-hard",
    fixture("question.jsonl"),
    "--judgments",
    fixture("model_judgment.jsonl"),
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  // Model wins 1 + 1 + 3, baseline 3 + 3 + 1, two ties; B=A and null are failed games: 6 / 14.
  assert.ok(Math.abs(out.win_rate - 600 / 14) < 1e-6, `${out.win_rate}`);
  assert.equal(out.battles, 14);
  assert.equal(out.failed, 2);
  assert.ok(out.ci[0] < out.win_rate && out.win_rate < out.ci[1]);
  const styled = await dno([
    "eval",
    "--arena-hard",
    fixture("question.jsonl"),
    "--judgments",
    fixture("model_judgment.jsonl"),
    "--answers",
    fixture("model.jsonl"),
    "--baseline",
    fixture("baseline.jsonl"),
    "--style-control",
    "--json",
  ]);
  assert.equal(styled.code, 0, styled.stderr);
  const s = JSON.parse(styled.stdout);
  assert.equal(s.style_control, "style");
  assert.equal(s.style_coefficients.length, 4);
  assert.notEqual(s.win_rate, out.win_rate);
});

test("dno eval --arena-hard judges both orders with the fake judge, asks again for a missing verdict", async () => {
  const judge = await startFakeJudge();
  try {
    writeFileSync(
      join(dir, "judge.yaml"),
      `kind: llm-judge\nbaseUrl: ${judge.baseUrl}\nmodel: fake-judge\ntimeoutMs: 5000\nretryBaseMs: 5\nmaxRetries: 1\n`,
    );
    const extra = (file: string, lines: string[]) => {
      const path = join(dir, file.replace(".jsonl", "-plus.jsonl"));
      writeFileSync(path, `${readFileSync(fixture(file), "utf8")}${lines.join("\n")}\n`);
      return path;
    };
    const answer = (id: string, text: string) =>
      JSON.stringify({ question_id: id, model_id: "m", choices: [{ index: 0, turns: [{ content: text }] }] });
    const questions = extra("question.jsonl", [
      '{"question_id": "q-noverdict", "turns": [{"content": "Name a prime. fault=noverdict"}]}',
      '{"question_id": "q-garbage", "turns": [{"content": "Name a colour. fault=garbage"}]}',
    ]);
    const model = extra("model.jsonl", [answer("q-noverdict", "7 (q=5)"), answer("q-garbage", "red (q=5)")]);
    const baseline = extra("baseline.jsonl", [
      answer("q-noverdict", "9 (q=3)"),
      answer("q-garbage", "blue (q=5)"),
    ]);
    const out = join(dir, "judgments.jsonl");
    const args = [
      "eval",
      "--arena-hard",
      questions,
      "--answers",
      model,
      "--baseline",
      baseline,
      "--oracle",
      "judge.yaml",
    ];
    const r = await dno([...args, "--judgments-out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    // q differences (model - baseline): +1, -6, 0, +3, 0, +2, garbage. Model wins 1+1, 3+3, 1+1;
    // baseline 3+3; ties 1+1, 1+1; the garbage question's two games fail: (10 + 2) / 20.
    assert.ok(Math.abs(result.win_rate - 60) < 1e-6, `${result.win_rate}`);
    assert.equal(result.failed, 2);
    assert.equal(result.battles, 20);
    assert.match(r.stderr, /2 games failed and are left out/);
    const judgments = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const noVerdict = judgments.find((j) => j.question_id === "q-noverdict");
    assert.deepEqual(
      noVerdict.games.map((g: { score: string }) => g.score),
      ["B>A", "A>B"],
    );
    assert.match(noVerdict.games[0].user_prompt, /<answer_a>\n9 \(q=3\)\n<\/answer_a>/);
    // The judgments file is arena-hard-auto's: scored again, the same win rate.
    const again = await dno(["eval", "--arena-hard", questions, "--judgments", out, "--json"]);
    assert.equal(JSON.parse(again.stdout).win_rate, result.win_rate);
  } finally {
    await judge.close();
  }
});
