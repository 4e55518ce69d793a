/**
 * Only-prompting pairs (Xu et al. 2024, arXiv 2409.17534): no judge at all. y_w is pi_t's sample for
 * the prompt, y_l its sample for the same prompt under a prefix asking for a worse answer; sample j
 * of one is paired with sample j of the other. The prefix sets the optimality gap, narrowed over the
 * iterations (harder negatives later).
 */
import type { Candidate, Pair } from "./pairs.js";

/** Candidate id of pi_t's j-th answer under the worse-answer prefix. */
export const negativeId = (j: number): string => `n${j}`;

/** The prefix of iteration t: the t-th of the list (1-based), the last one once the list runs out. */
export function negativePrefix(prefixes: readonly string[], t: number): string {
  if (prefixes.length === 0) throw new RangeError("the prompted pair rule needs at least one prefix");
  return prefixes[Math.min(t, prefixes.length) - 1]!;
}

/**
 * Up to `pairsPerPrompt` pairs (s_j over n_j); a defective s_j, or one equal to n_j, makes no pair.
 */
export function promptedPairs(
  promptId: string,
  candidates: readonly (Candidate & { text: string })[],
  iteration: number,
  pairsPerPrompt = 1,
): Pair[] {
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const out: Pair[] = [];
  for (let j = 0; out.length < pairsPerPrompt; j++) {
    const pos = byId.get(`s${j}`);
    const neg = byId.get(negativeId(j));
    if (pos === undefined || neg === undefined) break;
    if (pos.defect || pos.text === neg.text) continue;
    out.push({
      promptId,
      chosen: pos.id,
      rejected: neg.id,
      chosenSource: "student",
      rejectedSource: "student",
      rule: "prompted",
      margin: null,
      target: null,
      iteration,
    });
  }
  return out;
}
