import type { JudgeMessage, TextJudgment } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import {
  type ArenaAnswer,
  type ArenaGame,
  type ArenaQuestion,
  answerFromText,
  arenaBattles,
  judgeGame,
  type StyleControl,
  styleDifferences,
  styleDims,
  type Verdict,
} from "./arena-hard.js";
import { bootstrapWinRate } from "./bradley-terry.js";
import type { JudgePrompt } from "./judge-prompts.js";
import {
  defaultMtBenchPrompts,
  gradeMtBench,
  type MtBenchGrade,
  type MtBenchPromptName,
  type MtBenchQuestion,
  type MtBenchSummary,
  summarizeMtBench,
} from "./mt-bench.js";

/** Running a benchmark end to end, shared by `dno eval` and the pipeline's `eval.benchmark`. */

export interface ChatTurn {
  role: "user" | "assistant";
  content: string;
}

/**
 * Answers conversations (each ending with a user turn) at a temperature, one answer per conversation:
 * a checkpoint through src/model's `answerConversations`, wired in by the caller.
 */
export type Answerer = (
  conversations: readonly ChatTurn[][],
  temperature: number,
  label: string,
) => Promise<string[]>;

export type Ask = (system: string, messages: readonly JudgeMessage[]) => Promise<TextJudgment>;

/** FastChat's sampling temperature per MT-Bench category (0.7 for any other). */
const MT_BENCH_TEMPERATURE: Record<string, number> = {
  writing: 0.7,
  roleplay: 0.7,
  extraction: 0,
  math: 0,
  coding: 0,
  reasoning: 0,
  stem: 0.1,
  humanities: 0.1,
  "arena-hard-200": 0,
};

/** Both turns of every question, turn 2 conditioned on the model's own turn-1 answer, as FastChat generates them. */
export async function mtBenchAnswers(
  questions: readonly MtBenchQuestion[],
  answer: Answerer,
): Promise<string[][]> {
  const answers: string[][] = questions.map(() => []);
  const temperatureOf = (q: MtBenchQuestion) => MT_BENCH_TEMPERATURE[q.category] ?? 0.7;
  for (const turn of [0, 1]) {
    const byTemperature = new Map<number, number[]>();
    questions.forEach((q, i) => {
      if (turn < q.turns.length)
        byTemperature.set(temperatureOf(q), [...(byTemperature.get(temperatureOf(q)) ?? []), i]);
    });
    for (const [temperature, indices] of byTemperature) {
      const conversations = indices.map((i) => {
        const q = questions[i]!;
        const messages: ChatTurn[] = [{ role: "user", content: q.turns[0]! }];
        if (turn === 1)
          messages.push(
            { role: "assistant", content: answers[i]![0]! },
            { role: "user", content: q.turns[1]! },
          );
        return messages;
      });
      const texts = await answer(conversations, temperature, `turn ${turn + 1} (T=${temperature})`);
      indices.forEach((i, k) => {
        answers[i]!.push(texts[k]!);
      });
    }
  }
  return answers;
}

/** Grades the answers and summarises them. */
export async function runMtBench(
  questions: readonly MtBenchQuestion[],
  answers: readonly string[][],
  references: readonly (string[] | null)[],
  ask: Ask,
  prompts: Record<MtBenchPromptName, JudgePrompt> = defaultMtBenchPrompts,
  onGraded?: () => void,
): Promise<{ grades: MtBenchGrade[]; summary: MtBenchSummary }> {
  const grades = await gradeMtBench(questions, answers, references, ask, prompts, onGraded);
  return { grades, summary: summarizeMtBench(grades) };
}

/** Arena-Hard's numbers, rates in percent. */
export interface ArenaResult {
  win_rate: number;
  ci: [number, number];
  failed: number;
  questions: number;
  battles: number;
  style_control: StyleControl | null;
  style_coefficients: number[] | null;
}

/** Both games of every question: game 1 with the baseline as A, game 2 with the model as A. */
export async function judgeArenaHard(
  questions: readonly ArenaQuestion[],
  model: readonly ArenaAnswer[],
  baseline: readonly ArenaAnswer[],
  ask: Ask,
  prompt: JudgePrompt,
  onJudged?: () => void,
): Promise<ArenaGame[][]> {
  return Promise.all(
    questions.map((q, i) =>
      Promise.all([
        judgeGame(ask, prompt, q.prompt, baseline[i]!.text, model[i]!.text),
        judgeGame(ask, prompt, q.prompt, model[i]!.text, baseline[i]!.text),
      ]).then((pair) => {
        onJudged?.();
        return pair;
      }),
    ),
  );
}

/**
 * Style counts in one unit for both sides: arena-hard's token counts where both answer files carry
 * them, otherwise characters for both (a length ratio of mixed units would be meaningless).
 */
export function sameLengthUnit(model: ArenaAnswer[], baseline: ArenaAnswer[]): void {
  if (model.every((a, i) => a.style.lengthUnit === baseline[i]!.style.lengthUnit)) return;
  for (const side of [model, baseline])
    side.forEach((a, i) => {
      side[i] = { ...a, style: answerFromText(a.text).style };
    });
}

/** The Bradley-Terry win rate against the baseline with its bootstrap interval, as arena-hard-auto reports it. */
export function arenaHardResult(
  judged: readonly { scores: readonly (Verdict | null)[]; baseline?: ArenaAnswer; model?: ArenaAnswer }[],
  options: { control?: StyleControl | undefined; rounds: number; seed: number },
): ArenaResult {
  const control = options.control;
  const withStyle = judged.map((j) => ({
    scores: j.scores,
    ...(control &&
      j.baseline &&
      j.model && { style: styleDifferences(j.baseline.style, j.model.style, control) }),
  }));
  const battles = arenaBattles(withStyle, control);
  const failed = judged.reduce((n, j) => n + j.scores.filter((s) => s === null).length, 0);
  if (battles.length === 0) throw new DnoError("Arena-Hard: every game failed; no battle to fit");
  // Player 0 is the baseline (arena-hard's model_a), player 1 the model.
  const fit = bootstrapWinRate(battles, 2, 1, 0, {
    rounds: options.rounds,
    seed: options.seed,
    ...(control && { styleDims: styleDims(control) }),
  });
  return {
    win_rate: fit.winRate * 100,
    ci: [fit.ci[0] * 100, fit.ci[1] * 100],
    failed,
    questions: judged.length,
    battles: battles.length,
    style_control: control ?? null,
    style_coefficients: control ? fit.style : null,
  };
}
