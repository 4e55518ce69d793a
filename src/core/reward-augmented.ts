/**
 * Reward-augmented preference data (Zhang et al. 2024, arXiv 2410.08067): every judged pair
 * (y_w, y_l) with quality values v_w > v_l becomes two goal-conditioned pairs,
 *   (x | goal g(v_w)):  y_w over y_l      and      (x | goal g(v_l)):  y_l over y_w,
 * so each response is the positive for the quality it actually reached. The policy learns
 * pi(y | x, goal); generation and evaluation then ask for the highest goal.
 *
 * The quality value (`qualityOf`) is whatever the pair rule ranked by: the 6-point judge's score, or the win-rate
 * estimate r^ in [0, 1], rounded to `decimals` so that the goals form a small vocabulary.
 */
import { DnoError } from "../util/errors.js";
import type { Candidate, Pair } from "./pairs.js";

export interface GoalOptions {
  /** Digits after the decimal point of a goal (0 for integer scores). */
  decimals: number;
}

/** The goal a response with quality `value` reaches. */
export function goalOf(value: number, options: GoalOptions): number {
  const f = 10 ** options.decimals;
  return Math.round(value * f) / f;
}

/**
 * The goal-conditioned relabelling of one prompt's pairs. `qualityOf` reads the quality the pair rule
 * used. A pair whose rejected response has no value (an unjudged defect) keeps only its forward copy;
 * so does a pair whose two goals round to the same number (the two copies would contradict each
 * other under one conditioning).
 */
export function relabelWithGoals(
  pairs: readonly Pair[],
  candidates: readonly Candidate[],
  qualityOf: (c: Candidate) => number | null,
  options: GoalOptions,
): Pair[] {
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const out: Pair[] = [];
  for (const pair of pairs) {
    const chosen = byId.get(pair.chosen);
    const rejected = byId.get(pair.rejected);
    if (chosen === undefined || rejected === undefined) {
      throw new DnoError(
        `reward-augmented pairs: prompt ${pair.promptId} has no candidate for pair ${pair.chosen}>${pair.rejected}`,
      );
    }
    const vw = qualityOf(chosen);
    if (vw === null)
      throw new DnoError(
        `reward-augmented pairs: prompt ${pair.promptId}: the chosen response ${pair.chosen} has no quality value`,
      );
    const vl = qualityOf(rejected);
    const gw = goalOf(vw, options);
    out.push({ ...pair, goal: gw });
    if (vl === null || goalOf(vl, options) === gw) continue;
    out.push({
      ...pair,
      chosen: pair.rejected,
      rejected: pair.chosen,
      chosenSource: pair.rejectedSource,
      rejectedSource: pair.chosenSource,
      margin: pair.margin === null ? null : -pair.margin,
      target: pair.target === null ? null : 1 - pair.target,
      goal: goalOf(vl, options),
    });
  }
  return out;
}

/**
 * Where the goal is written: `prefix`, a template holding `{goal}` and `{prompt}` that becomes the
 * user message; `system`, a template holding `{goal}` that becomes a system message before the plain
 * prompt (what the paper's code does; the policy's chat template renders it).
 */
export type GoalConditioning = "prefix" | "system";

export const DEFAULT_GOAL_TEMPLATES: Record<GoalConditioning, string> = {
  prefix: "<goal {goal}> {prompt}",
  system: "Answer at quality {goal}.",
};

/** The placeholders a template of each conditioning must hold, and must not. */
export function goalTemplateProblem(conditioning: GoalConditioning, template: string): string | undefined {
  if (!template.includes("{goal}")) return "the template must contain {goal}";
  if (conditioning === "prefix" && !template.includes("{prompt}"))
    return "a prefix template must contain {prompt}";
  if (conditioning === "system" && template.includes("{prompt}"))
    return "a system template must not contain {prompt}: the prompt is the user message";
  return undefined;
}

/** A prompt as the policy is given it: the user message, after a system message when there is one. */
export interface ConditionedPrompt {
  user: string;
  system?: string;
}

/** `prompt` conditioned on `goal`: the filled template as the user message, or as the system message. */
export function conditionPrompt(
  conditioning: { kind: GoalConditioning; template: string },
  prompt: string,
  goal: number,
  options: GoalOptions,
): ConditionedPrompt {
  const filled = conditioning.template.replaceAll("{goal}", goal.toFixed(options.decimals));
  return conditioning.kind === "prefix"
    ? { user: filled.replaceAll("{prompt}", prompt) }
    : { user: prompt, system: filled };
}
