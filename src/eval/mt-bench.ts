import { z } from "zod";
import type { JudgeMessage, TextJudgment } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";
import { formatPython, type JudgePrompt } from "./judge-prompts.js";
import { mean, standardErrorOfMean } from "./winrate.js";

/**
 * MT-Bench (Zheng et al. 2023) as FastChat's llm_judge runs it in "single" mode: each turn of each
 * question graded 1-10 by a judge on its own (turn 2 sees the whole conversation), reference-guided for
 * math, reasoning and coding, the rating read from `[[n]]`; the score is the mean rating per turn, over
 * both turns, and per category. File formats are FastChat's: question.jsonl, model_answer/*.jsonl,
 * model_judgment/*_single.jsonl and data/judge_prompts.jsonl.
 */

/** FastChat's NEED_REF_CATS: categories graded against a reference answer. */
export const REFERENCE_CATEGORIES = ["math", "reasoning", "coding", "arena-hard-200"];

const questionId = z.union([z.number().int(), z.string().min(1)]);

export const mtBenchQuestionSchema = z.looseObject({
  question_id: questionId,
  category: z.string().min(1),
  turns: z.array(z.string()).min(1).max(2),
  /** Reference answers, one per turn (newer question.jsonl files carry them). */
  reference: z.array(z.string()).optional(),
});
export type MtBenchQuestion = z.infer<typeof mtBenchQuestionSchema>;

/** FastChat's model_answer format (also its reference_answer files). */
export const modelAnswerSchema = z.looseObject({
  question_id: questionId,
  answer_id: z.string().optional(),
  model_id: z.string().optional(),
  choices: z
    .array(z.looseObject({ index: z.number().int().optional(), turns: z.array(z.string()).min(1) }))
    .min(1),
  tstamp: z.number().optional(),
});
export type ModelAnswer = z.infer<typeof modelAnswerSchema>;

/** FastChat's single-mode judgment record (`score` -1: the judgment failed). */
export const mtBenchJudgmentSchema = z.looseObject({
  question_id: questionId,
  model: z.string(),
  judge: z.tuple([z.string(), z.string()]).optional(),
  user_prompt: z.string().optional(),
  judgment: z.string().optional(),
  score: z.number(),
  turn: z.union([z.literal(1), z.literal(2)]),
  tstamp: z.number().optional(),
});
export type MtBenchJudgment = z.infer<typeof mtBenchJudgmentSchema>;

const key = (id: number | string): string => String(id);

export function readMtBenchQuestions(file: string): MtBenchQuestion[] {
  const questions = readJsonl(file, mtBenchQuestionSchema);
  if (questions.length === 0) throw new DnoError(`${file}: no questions`);
  const seen = new Set<string>();
  questions.forEach((q) => {
    if (seen.has(key(q.question_id)))
      throw new DnoError(`${file}: question_id ${q.question_id} appears twice`);
    seen.add(key(q.question_id));
    if (q.reference && q.reference.length < q.turns.length)
      throw new DnoError(
        `${file}: question ${q.question_id}: ${q.turns.length} turns but ${q.reference.length} reference answers`,
      );
  });
  return questions;
}

/** Answers by question id (the first choice's turns), as FastChat's load_model_answers keeps them. */
export function readModelAnswers(file: string): Map<string, string[]> {
  const answers = new Map<string, string[]>();
  for (const a of readJsonl(file, modelAnswerSchema)) answers.set(key(a.question_id), a.choices[0]!.turns);
  if (answers.size === 0) throw new DnoError(`${file}: no answers`);
  return answers;
}

export function readMtBenchJudgments(file: string): MtBenchJudgment[] {
  const judgments = readJsonl(file, mtBenchJudgmentSchema);
  if (judgments.length === 0) throw new DnoError(`${file}: no judgments`);
  return judgments;
}

/** Every question's answer turns, checked against the questions; errors name the file and the question. */
export function answersFor(
  questions: readonly MtBenchQuestion[],
  answers: Map<string, string[]>,
  file: string,
): string[][] {
  return questions.map((q) => {
    const a = answers.get(key(q.question_id));
    if (!a) throw new DnoError(`${file}: no answer to question ${q.question_id}`);
    if (a.length < q.turns.length)
      throw new DnoError(
        `${file}: question ${q.question_id} has ${q.turns.length} turns, the answer ${a.length}`,
      );
    return a;
  });
}

/** Reference answers of the questions that need them: their own `reference`, else the reference file's. */
export function referencesFor(
  questions: readonly MtBenchQuestion[],
  references: Map<string, string[]> | undefined,
  where: string,
): (string[] | null)[] {
  return questions.map((q) => {
    if (!REFERENCE_CATEGORIES.includes(q.category)) return null;
    const ref = q.reference ?? references?.get(key(q.question_id));
    if (!ref || ref.length < q.turns.length)
      throw new DnoError(
        `${where}: question ${q.question_id} (${q.category}) is graded against a reference answer and has none for every turn ` +
          "(a `reference` list in the question, or --references FILE in FastChat's model_answer format)",
      );
    return ref;
  });
}

/**
 * The rating in a judge's answer as FastChat reads it: the first `[[n]]`, else the first `[n]`.
 * Anything else, or a rating outside 1-10 (which FastChat would keep), is a failure: a reason string.
 */
export function parseRating(text: string): number | string {
  const match = /\[\[(\d+\.?\d*)\]\]/.exec(text) ?? /\[(\d+\.?\d*)\]/.exec(text);
  if (!match) return `no [[rating]] in ${JSON.stringify(text.slice(-80))}`;
  const rating = Number(match[1]);
  if (!(rating >= 1 && rating <= 10)) return `rating ${match[1]} is outside 1-10`;
  return rating;
}

/** The names FastChat gives its four single-answer prompts; a judge_prompts.jsonl file overrides them. */
export type MtBenchPromptName =
  | "single-v1"
  | "single-math-v1"
  | "single-v1-multi-turn"
  | "single-math-v1-multi-turn";

const RATING_INSTRUCTION =
  "Begin with a brief explanation, as objective as you can make it. Then rate the answer with an integer " +
  'from 1 (useless) to 10 (excellent) in double square brackets, for example: "Rating: [[6]]".';

/** dno's own wording of the four single-answer grading prompts (FastChat's may be loaded instead). */
export const defaultMtBenchPrompts: Record<MtBenchPromptName, JudgePrompt> = {
  "single-v1": {
    name: "single-v1",
    system: "You are a fair and careful judge of AI assistants.",
    template: `Judge the AI assistant's answer to the user's question below. Weigh how helpful, relevant, accurate, deep and detailed it is, and its creativity where the question asks for it. ${RATING_INSTRUCTION}

<question>
{question}
</question>

<answer>
{answer}
</answer>`,
  },
  "single-math-v1": {
    name: "single-math-v1",
    system: "You are a fair and careful judge of AI assistants.",
    template: `Judge the AI assistant's answer to the user's question below for correctness first, then helpfulness. You are given a reference answer: compare the assistant's answer with it, and point out and correct any mistakes before rating. ${RATING_INSTRUCTION}

<question>
{question}
</question>

<reference_answer>
{ref_answer_1}
</reference_answer>

<answer>
{answer}
</answer>`,
  },
  "single-v1-multi-turn": {
    name: "single-v1-multi-turn",
    system: `You judge the second answer of a two-turn conversation between a user and an AI assistant. Use the first turn only as context. Weigh how helpful, relevant, accurate, deep and detailed the second answer is, and its creativity where the question asks for it. ${RATING_INSTRUCTION}`,
    template: `<turn_1_question>
{question_1}
</turn_1_question>

<turn_1_answer>
{answer_1}
</turn_1_answer>

<turn_2_question>
{question_2}
</turn_2_question>

<turn_2_answer>
{answer_2}
</turn_2_answer>`,
  },
  "single-math-v1-multi-turn": {
    name: "single-math-v1-multi-turn",
    system: `You judge the second answer of a two-turn conversation between a user and an AI assistant, for correctness first, then helpfulness. Use the first turn only as context. You are given reference answers to both questions: compare the assistant's second answer with the second reference, and point out and correct any mistakes before rating. ${RATING_INSTRUCTION}`,
    template: `<turn_1_question>
{question_1}
</turn_1_question>

<turn_1_reference_answer>
{ref_answer_1}
</turn_1_reference_answer>

<turn_1_answer>
{answer_1}
</turn_1_answer>

<turn_2_question>
{question_2}
</turn_2_question>

<turn_2_reference_answer>
{ref_answer_2}
</turn_2_reference_answer>

<turn_2_answer>
{answer_2}
</turn_2_answer>`,
  },
};

const judgePromptLineSchema = z.looseObject({
  name: z.string(),
  system_prompt: z.string(),
  prompt_template: z.string(),
  output_format: z.string().optional(),
});

/** The four prompts from FastChat's judge_prompts.jsonl (every other prompt in it is ignored). */
export function readMtBenchPrompts(file: string): Record<MtBenchPromptName, JudgePrompt> {
  const byName = new Map(readJsonl(file, judgePromptLineSchema).map((p) => [p.name, p]));
  const out = {} as Record<MtBenchPromptName, JudgePrompt>;
  for (const name of Object.keys(defaultMtBenchPrompts) as MtBenchPromptName[]) {
    const p = byName.get(name);
    if (!p) throw new DnoError(`${file}: no judge prompt named "${name}"`);
    if (p.output_format !== undefined && p.output_format !== "[[rating]]")
      throw new DnoError(`${file}: ${name}: output_format ${p.output_format}, expected [[rating]]`);
    out[name] = { name, system: p.system_prompt, template: p.prompt_template };
  }
  return out;
}

export interface MtBenchGrade {
  questionId: number | string;
  category: string;
  turn: 1 | 2;
  promptName: MtBenchPromptName;
  userPrompt: string;
  /** The judge's answer; null when the call failed. */
  judgment: string | null;
  /** The rating in [1, 10]; null when the call failed or no rating could be read. */
  score: number | null;
  failed?: string;
}

type Ask = (system: string, messages: readonly JudgeMessage[]) => Promise<TextJudgment>;

/**
 * Grades every turn of every question (turn 2 only for two-turn questions). Failed calls and unreadable
 * ratings are kept as failures with their reason; they never become scores.
 */
export async function gradeMtBench(
  questions: readonly MtBenchQuestion[],
  answers: readonly string[][],
  references: readonly (string[] | null)[],
  ask: Ask,
  prompts: Record<MtBenchPromptName, JudgePrompt> = defaultMtBenchPrompts,
  onGraded: () => void = () => {},
): Promise<MtBenchGrade[]> {
  const jobs = questions.flatMap((q, i) => {
    const a = answers[i]!;
    const ref = references[i];
    const turn1Values: Record<string, string> = {
      question: q.turns[0]!,
      answer: a[0]!,
      ...(ref && { ref_answer_1: ref[0]! }),
    };
    const out: {
      q: MtBenchQuestion;
      turn: 1 | 2;
      name: MtBenchPromptName;
      values: Record<string, string>;
    }[] = [{ q, turn: 1, name: ref ? "single-math-v1" : "single-v1", values: turn1Values }];
    if (q.turns.length === 2)
      out.push({
        q,
        turn: 2,
        name: ref ? "single-math-v1-multi-turn" : "single-v1-multi-turn",
        values: {
          question_1: q.turns[0]!,
          question_2: q.turns[1]!,
          answer_1: a[0]!,
          answer_2: a[1]!,
          ...(ref && { ref_answer_1: ref[0]!, ref_answer_2: ref[1]! }),
        },
      });
    return out;
  });
  return Promise.all(
    jobs.map(async ({ q, turn, name, values }): Promise<MtBenchGrade> => {
      const prompt = prompts[name];
      const userPrompt = formatPython(prompt.template, values, `judge prompt ${name}`);
      const answer = await ask(prompt.system, [{ role: "user", content: userPrompt }]);
      onGraded();
      const base = { questionId: q.question_id, category: q.category, turn, promptName: name, userPrompt };
      if (answer.text === null)
        return { ...base, judgment: null, score: null, failed: answer.failed ?? "failed" };
      const rating = parseRating(answer.text);
      return typeof rating === "string"
        ? { ...base, judgment: answer.text, score: null, failed: rating }
        : { ...base, judgment: answer.text, score: rating };
    }),
  );
}

/** A mean with its standard error (sample standard deviation over sqrt(n)); null where undefined. */
export interface MeanWithError {
  mean: number | null;
  se: number | null;
  n: number;
}

export interface MtBenchSummary {
  turn1: MeanWithError;
  turn2: MeanWithError;
  overall: MeanWithError;
  categories: Record<string, MeanWithError>;
  /** Judgments that failed (never scored). */
  failed: number;
}

function meanWithError(xs: readonly number[]): MeanWithError {
  const se = standardErrorOfMean(xs);
  return { mean: xs.length > 0 ? mean(xs) : null, se: Number.isFinite(se) ? se : null, n: xs.length };
}

/** FastChat's show_result means (turn 1, turn 2, both turns) and per-category means, with standard errors. */
export function summarizeMtBench(
  grades: readonly { category: string; turn: 1 | 2; score: number | null }[],
): MtBenchSummary {
  const scored = grades.filter((g) => g.score !== null) as { category: string; turn: 1 | 2; score: number }[];
  const categories: Record<string, MeanWithError> = {};
  for (const c of new Set(grades.map((g) => g.category)))
    categories[c] = meanWithError(scored.filter((g) => g.category === c).map((g) => g.score));
  return {
    turn1: meanWithError(scored.filter((g) => g.turn === 1).map((g) => g.score)),
    turn2: meanWithError(scored.filter((g) => g.turn === 2).map((g) => g.score)),
    overall: meanWithError(scored.map((g) => g.score)),
    categories,
    failed: grades.length - scored.length,
  };
}

/** FastChat judgments (score -1 = failed) of one model, with each question's category. */
export function gradesFromJudgments(
  judgments: readonly MtBenchJudgment[],
  questions: readonly MtBenchQuestion[],
  file: string,
): { category: string; turn: 1 | 2; score: number | null }[] {
  const category = new Map(questions.map((q) => [key(q.question_id), q.category]));
  return judgments.map((j) => {
    const c = category.get(key(j.question_id));
    if (c === undefined)
      throw new DnoError(`${file}: question ${j.question_id} is not in the questions file`);
    return { category: c, turn: j.turn, score: j.score === -1 ? null : j.score };
  });
}

/** A grade as a FastChat model_judgment record (score -1 when it failed). */
export function toFastChatJudgment(grade: MtBenchGrade, model: string, judgeModel: string): MtBenchJudgment {
  return {
    question_id: grade.questionId,
    model,
    judge: [judgeModel, grade.promptName],
    user_prompt: grade.userPrompt,
    judgment: grade.judgment ?? `$ERROR$ ${grade.failed ?? ""}`.trim(),
    score: grade.score ?? -1,
    turn: grade.turn,
    tstamp: Date.now() / 1000,
  };
}
