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
 * The conditioning, as a prompt template holding `{goal}` and `{prompt}` (the paper writes the goal
 * into the system prompt; for a model without a chat template a prefix is the same thing).
 */
export function conditionPrompt(
  template: string,
  prompt: string,
  goal: number,
  options: GoalOptions,
): string {
  return template.replaceAll("{goal}", goal.toFixed(options.decimals)).replaceAll("{prompt}", prompt);
}
