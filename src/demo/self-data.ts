/**
 * Seed data for the demo's self-rewarding rows. Both methods ask the policy for more than answers, so
 * (as in their papers) the seed model is trained on that too, beside the demo's SFT answers:
 * - Self-Rewarding LMs train the seed on LLM-as-a-judge examples (EFT). Here: a judge prompt (the
 *   template below) and the demo's rubric score, 0 wrong or malformed, 1 correct and plain, 2 correct
 *   in brackets (a pointwise rubric cannot express the bracket cycle: that is the point of DNO);
 * - only-prompting needs the policy to follow worse-answer prefixes: "worse<g> rev abc=" is answered
 *   at gap g, 3 = the word unreversed, 2 = one adjacent swap, 1 = correct but plain.
 */
import { compileTemplate } from "../oracle/index.js";
import { correctStyle, type DemoTaskOptions, promptOf, render, reverse, teacherAnswer } from "./task.js";

/** The self judge's template (our pointwise template's variables; short: the demo model sees 48 tokens). */
export const DEMO_JUDGE_TEMPLATE = "judge {{ prompt }} {{ candidates[0].text }}";

export const DEMO_SELF_SCORES = { min_score: 0, max_score: 2 } as const;

/** Iteration t uses the t-th prefix: the widest gap first, harder negatives later. */
export const DEMO_NEGATIVE_PREFIXES = ["worse3 ", "worse2 ", "worse1 "];

/** The demo's rubric: 0 wrong or malformed, 1 correct and plain, 2 correct in brackets. */
export function demoRubricScore(prompt: string, answer: string): number {
  const style = correctStyle(prompt, answer);
  return style === null ? 0 : style === "plain" ? 1 : 2;
}

export interface SftRow {
  id: string;
  prompt: string;
  gold: string;
}

/** Two judged answers per word, each a judge prompt with its rubric score as the gold answer. */
export function judgeExamples(words: readonly string[], seed: number, task: DemoTaskOptions): SftRow[] {
  const template = compileTemplate(DEMO_JUDGE_TEMPLATE, "the demo's judge template");
  return words.flatMap((w, i) =>
    [3, 4].map((draw) => {
      const prompt = promptOf(w);
      const answer = teacherAnswer(w, seed, task, draw);
      return {
        id: `judge-${i}-${draw}`,
        prompt: template.render({ prompt, candidates: [{ id: "1", text: answer }], ...DEMO_SELF_SCORES }),
        gold: String(demoRubricScore(prompt, answer)),
      };
    }),
  );
}

/** One example per word and gap: the prefixed prompt answered at that gap. */
export function negativeExamples(words: readonly string[]): SftRow[] {
  return words.flatMap((w, i) => {
    const right = reverse(w);
    const swapped = right.length > 1 ? right[1]! + right[0]! + right.slice(2) : right;
    // A palindrome reversed or swapped is still right: lengthen it to keep it wrong.
    const [gap3, gap2, gap1] = DEMO_NEGATIVE_PREFIXES as [string, string, string];
    const answers: [string, string][] = [
      [gap3, w === right ? `${w}${w[0]}` : w],
      [gap2, swapped === right ? `${right}${right[0]}` : swapped],
      [gap1, render(right, "plain")],
    ];
    return answers.map(([prefix, gold]) => ({
      id: `worse-${i}-${prefix.trim()}`,
      prompt: prefix + promptOf(w),
      gold,
    }));
  });
}
