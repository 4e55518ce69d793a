import { z } from "zod";
import type { JudgeMessage, TextJudgment } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";
import type { Battle } from "./bradley-terry.js";
import { formatPython, type JudgePrompt } from "./judge-prompts.js";
import { charLength } from "./winrate.js";

/**
 * Arena-Hard-Auto (Li et al. 2024) as lmarena/arena-hard-auto v0.1 scores it: the judge compares the
 * model with the baseline twice (game 1 with the baseline as A, game 2 swapped) on five verdicts,
 * A>>B, A>B, A=B, B>A, B>>A; a strong verdict counts as three battles, a slight one as one, a tie as
 * one tie; a game without a single verdict is left out. File formats are arena-hard-auto's:
 * question.jsonl (v0.1 `question_id` + `turns`, or v2.0 `uid` + `prompt`), model_answer (v0.1
 * `choices[0].turns[0].content`, optional `conv_metadata` for style control) and model_judgment
 * (`games: [{ user_prompt, judgment, score }]`).
 */

export const VERDICTS = ["A>>B", "A>B", "A=B", "B>A", "B>>A"] as const;
export type Verdict = (typeof VERDICTS)[number];

/** arena-hard-auto's default weight of a strong verdict (`--weight 3`). */
export const STRONG_VERDICT_WEIGHT = 3;

const id = z.union([z.string().min(1), z.number().int()]);

const questionSchema = z.union([
  z
    .looseObject({
      question_id: id,
      category: z.string().optional(),
      turns: z.array(z.looseObject({ content: z.string() })).min(1),
    })
    .transform((q) => ({ id: String(q.question_id), prompt: q.turns[0]!.content })),
  z
    .looseObject({ uid: id, category: z.string().optional(), prompt: z.string() })
    .transform((q) => ({ id: String(q.uid), prompt: q.prompt })),
]);

export interface ArenaQuestion {
  id: string;
  prompt: string;
}

export function readArenaQuestions(file: string): ArenaQuestion[] {
  const questions: ArenaQuestion[] = readJsonl(file, questionSchema);
  if (questions.length === 0) throw new DnoError(`${file}: no questions`);
  const seen = new Set<string>();
  for (const q of questions) {
    if (seen.has(q.id)) throw new DnoError(`${file}: question ${q.id} appears twice`);
    seen.add(q.id);
  }
  return questions;
}

/** Markdown counts of an answer as arena-hard-auto's conv_metadata stores them (each may be a dict of parts). */
const countSchema = z.union([z.number(), z.record(z.string(), z.number())]);
const metadataSchema = z.looseObject({
  token_len: z.number(),
  header_count: countSchema,
  list_count: countSchema,
  bold_count: countSchema,
});

const answerSchema = z.looseObject({
  question_id: id,
  model_id: z.string().optional(),
  choices: z
    .array(
      z.looseObject({
        turns: z.array(z.looseObject({ content: z.string(), token_len: z.number().optional() })).min(1),
      }),
    )
    .min(1),
  conv_metadata: metadataSchema.optional(),
});

/** Style elements of an answer: length, then header, list and bold counts. */
export interface StyleCounts {
  length: number;
  headers: number;
  lists: number;
  bold: number;
  /** Whether `length` is arena-hard's tiktoken count (from conv_metadata) or characters. */
  lengthUnit: "tokens" | "characters";
}

export interface ArenaAnswer {
  text: string;
  style: StyleCounts;
  model?: string;
}

const total = (v: number | Record<string, number>): number =>
  typeof v === "number" ? v : Object.values(v).reduce((a, b) => a + b, 0);

/**
 * Markdown elements as arena-hard-auto counts them, code blocks removed first: headers `#`..`######`
 * followed by whitespace at a line start, ordered (`1. `) and unordered (`- `, `* `, `+ `) list items,
 * bold spans `**x**` and `__x__`.
 */
export function markdownCounts(text: string): { headers: number; lists: number; bold: number } {
  const prose = text.replace(/```[^`]*```/g, "");
  const count = (re: RegExp) => (prose.match(re) ?? []).length;
  return {
    headers: count(/^#{1,6}\s/gm),
    lists: count(/^\s*\d+\.\s/gm) + count(/^\s*[-*+]\s/gm),
    bold: count(/\*\*[^*\n]+\*\*/g) + count(/__[^_\n]+__/g),
  };
}

/** Answers by question id; style from conv_metadata when the file has it, else counted here. */
export function readArenaAnswers(file: string): Map<string, ArenaAnswer> {
  const answers = new Map<string, ArenaAnswer>();
  for (const a of readJsonl(file, answerSchema)) {
    const text = a.choices[0]!.turns[0]!.content;
    const m = a.conv_metadata;
    const style: StyleCounts = m
      ? {
          length: m.token_len,
          headers: total(m.header_count),
          lists: total(m.list_count),
          bold: total(m.bold_count),
          lengthUnit: "tokens",
        }
      : { length: charLength(text), ...markdownCounts(text), lengthUnit: "characters" };
    answers.set(String(a.question_id), { text, style, ...(a.model_id && { model: a.model_id }) });
  }
  if (answers.size === 0) throw new DnoError(`${file}: no answers`);
  return answers;
}

/** An answer written by dno (generated), with its style counted from the text. */
export function answerFromText(text: string): ArenaAnswer {
  return { text, style: { length: charLength(text), ...markdownCounts(text), lengthUnit: "characters" } };
}

/** dno's own wording of the pairwise judge prompt with arena-hard's five verdict labels. */
export const defaultArenaPrompt: JudgePrompt = {
  name: "arena-hard",
  system: `You are an impartial judge comparing two AI assistants' answers to a user's prompt. First write your own answer to the prompt. Then compare both assistants' answers with yours: find and correct mistakes or inaccurate information, and judge whether each answer is helpful (it does what the prompt asks, or asks for clarification when the prompt is ambiguous), relevant and concise, creative where that matters, and what important information it leaves out. The order of the answers means nothing.

After your explanation, end with exactly one of these verdict labels:
1. Assistant A is much better: [[A>>B]]
2. Assistant A is slightly better: [[A>B]]
3. A tie, about the same: [[A=B]]
4. Assistant B is slightly better: [[B>A]]
5. Assistant B is much better: [[B>>A]]
For example: "My final verdict: [[A=B]]".`,
  template: `<user_prompt>
{question_1}
</user_prompt>

<answer_a>
{answer_1}
</answer_a>

<answer_b>
{answer_2}
</answer_b>`,
};

/** What dno asks when a judgment ends without a verdict (arena-hard-auto asks once more, likewise). */
export const FINISH_VERDICT = "Finish your judgment by writing the final verdict label.";

const judgeConfigSchema = z.looseObject({
  system_prompt: z.string().optional(),
  prompt_template: z.union([z.string(), z.array(z.string()).min(1)]),
});

/**
 * The prompt of an arena-hard-auto judge config YAML: `prompt_template` (v0.1 a list, v2.0 a string) and
 * `system_prompt` (v0.1; v2.0 keeps it in code, so dno's own system prompt is used without one).
 */
export function arenaPromptFromConfig(value: unknown, file: string): JudgePrompt {
  const parsed = judgeConfigSchema.safeParse(value);
  if (!parsed.success)
    throw new DnoError(`${file}: expected arena-hard-auto's prompt_template (and system_prompt)`);
  const t = parsed.data.prompt_template;
  return {
    name: file,
    system: parsed.data.system_prompt ?? defaultArenaPrompt.system,
    template: Array.isArray(t) ? t[0]! : t,
  };
}

/**
 * The verdict of a judge's answer as arena-hard-auto v0.1 reads it: every `[[label]]`; one distinct
 * label is the verdict, none means "ask again", several distinct ones (or a label outside the five) fail.
 */
export function parseVerdict(text: string): Verdict | "none" | string {
  const labels = new Set([...text.matchAll(/\[\[([AB<>=]+)\]\]/g)].map((m) => m[1]!));
  if (labels.size === 0) return "none";
  if (labels.size > 1) return `conflicting verdicts ${[...labels].join(", ")}`;
  const label = [...labels][0]!;
  return (VERDICTS as readonly string[]).includes(label)
    ? (label as Verdict)
    : `unknown verdict [[${label}]]`;
}

/** One judged game: A and B as shown to the judge. */
export interface ArenaGame {
  userPrompt: string;
  judgment: string | null;
  /** The verdict label; null when the game failed. */
  score: Verdict | null;
  failed?: string;
}

type Ask = (system: string, messages: readonly JudgeMessage[]) => Promise<TextJudgment>;

/** One game: the judge's answer, asked once more to finish when it gave no verdict (as arena-hard does). */
export async function judgeGame(
  ask: Ask,
  prompt: JudgePrompt,
  question: string,
  answerA: string,
  answerB: string,
): Promise<ArenaGame> {
  const userPrompt = formatPython(
    prompt.template,
    // v0.1 templates name the fields question_1 / answer_1 / answer_2, v2.0 ones QUESTION / ANSWER_A / ANSWER_B.
    {
      question_1: question,
      answer_1: answerA,
      answer_2: answerB,
      QUESTION: question,
      ANSWER_A: answerA,
      ANSWER_B: answerB,
    },
    `judge prompt ${prompt.name}`,
  );
  const messages: JudgeMessage[] = [{ role: "user", content: userPrompt }];
  let judgment = "";
  for (let attempt = 0; attempt < 2; attempt++) {
    const answer = await ask(prompt.system, messages);
    if (answer.text === null)
      return { userPrompt, judgment: judgment || null, score: null, failed: answer.failed ?? "failed" };
    judgment += `\n${answer.text}`;
    const verdict = parseVerdict(judgment);
    if (verdict !== "none")
      return (VERDICTS as readonly string[]).includes(verdict)
        ? { userPrompt, judgment, score: verdict as Verdict }
        : { userPrompt, judgment, score: null, failed: verdict };
    messages.push({ role: "assistant", content: answer.text }, { role: "user", content: FINISH_VERDICT });
  }
  return { userPrompt, judgment, score: null, failed: "no verdict label after asking twice" };
}

/** arena-hard-auto's judgment record: game 1 has the baseline as A, game 2 the model as A. */
export interface ArenaJudgment {
  question_id: string;
  model: string;
  judge: string;
  games: { user_prompt: string; judgment: string | null; score: Verdict | null }[];
}

const games = z.array(z.looseObject({ score: z.string().nullable() }).nullable()).length(2);
const judgmentSchema = z.union([
  z
    .looseObject({ question_id: id, model: z.string(), games })
    .transform((r) => ({ questionId: String(r.question_id), model: r.model, games: r.games })),
  z
    .looseObject({ uid: id, model: z.string(), games })
    .transform((r) => ({ questionId: String(r.uid), model: r.model, games: r.games })),
]);

/** The verdicts (game 1, game 2; null where a game failed or has an unknown label) of an arena-hard judgment file. */
export function readArenaJudgments(
  file: string,
): { questionId: string; model: string; scores: (Verdict | null)[] }[] {
  const rows = readJsonl(file, judgmentSchema);
  if (rows.length === 0) throw new DnoError(`${file}: no judgments`);
  return rows.map((r) => ({
    questionId: r.questionId,
    model: r.model,
    scores: r.games.map((g) =>
      g && g.score !== null && (VERDICTS as readonly string[]).includes(g.score)
        ? (g.score as Verdict)
        : null,
    ),
  }));
}

/** The battles (player 0 = baseline, 1 = model) of one question's two games, with their weights. */
export function battlesOf(
  scores: readonly (Verdict | null)[],
  weight = STRONG_VERDICT_WEIGHT,
): { outcome: number; count: number }[] {
  // Outcome for the model: game 1 has the baseline as A, game 2 the model as A.
  const forModel = (v: Verdict, modelIsA: boolean): { outcome: number; count: number } => {
    const count = v === "A>>B" || v === "B>>A" ? weight : 1;
    if (v === "A=B") return { outcome: 0.5, count };
    const aWins = v === "A>>B" || v === "A>B";
    return { outcome: aWins === modelIsA ? 1 : 0, count };
  };
  return scores.flatMap((v, game) => (v === null ? [] : [forModel(v, game === 1)]));
}

export type StyleControl = "style" | "length" | "markdown";

const STYLE_ELEMENTS: Record<StyleControl, (keyof Omit<StyleCounts, "lengthUnit">)[]> = {
  style: ["length", "headers", "lists", "bold"],
  length: ["length"],
  markdown: ["headers", "lists", "bold"],
};

/** arena-hard's raw style features of a question (baseline a, model b): (a - b) / (a + b + 1) per element. */
export function styleDifferences(baseline: StyleCounts, model: StyleCounts, control: StyleControl): number[] {
  return STYLE_ELEMENTS[control].map((e) => (baseline[e] - model[e]) / (baseline[e] + model[e] + 1));
}

/**
 * The battles of a model against the baseline as Bradley-Terry rows, oriented as arena-hard builds them
 * (player a = 0 the baseline, b = 1 the model, outcome 1 when the baseline wins). With style, each
 * column is standardised over the battles (population standard deviation), as arena-hard does.
 */
export function arenaBattles(
  judged: readonly { scores: readonly (Verdict | null)[]; style?: readonly number[] }[],
  control?: StyleControl,
  weight = STRONG_VERDICT_WEIGHT,
): Battle[] {
  const battles = judged.flatMap(({ scores, style }) =>
    battlesOf(scores, weight).flatMap(({ outcome, count }) =>
      Array.from(
        { length: count },
        (): Battle => ({ a: 0, b: 1, outcome: 1 - outcome, ...(style && { style }) }),
      ),
    ),
  );
  if (!control || battles.length === 0) return battles;
  const elements = STYLE_ELEMENTS[control];
  const stats = elements.map((e, k) => {
    const xs = battles.map((b) => b.style![k]!);
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
    if (!(sd > 0))
      throw new DnoError(`style control: the ${e} feature is the same in every battle; it cannot be fitted`);
    return { m, sd };
  });
  return battles.map((b) => ({ ...b, style: b.style!.map((v, k) => (v - stats[k]!.m) / stats[k]!.sd) }));
}

export function styleDims(control: StyleControl): number {
  return STYLE_ELEMENTS[control].length;
}
