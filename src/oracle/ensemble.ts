/**
 * Reward-model ensembles (Coste et al. 2023, arXiv 2310.02743): one oracle over several, aggregating
 * their answers by the mean, the worst case, or the uncertainty-weighted mean - lambda * variance.
 * A judgment fails unless at least `minMembers` members answered it (a failure is never a label).
 */

import type { Link } from "./adapters.js";
import { makeOracle } from "./adapters.js";
import {
  emptyUsage,
  type Oracle,
  type OracleUsage,
  type PreferenceResult,
  type ScoreResult,
} from "./types.js";

export type Aggregate = "mean" | "min" | "uncertainty";

export interface EnsembleOptions {
  aggregate: Aggregate;
  /** uncertainty: the weight of the variance across members. */
  lambda: number;
  /** Members that must answer a judgment; default: all of them. */
  minMembers?: number;
  /** Scores to a preference, when every member is pointwise. */
  link: Link;
}

function meanAndVariance(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length;
  return { mean, variance };
}

/**
 * One candidate's score from its members' scores: the mean, the minimum (worst-case optimisation), or
 * mean - lambda * variance (uncertainty-weighted optimisation; population variance over members).
 */
export function aggregateScores(scores: readonly number[], aggregate: Aggregate, lambda: number): number {
  if (aggregate === "min") return Math.min(...scores);
  const { mean, variance } = meanAndVariance(scores);
  return aggregate === "mean" ? mean : mean - lambda * variance;
}

/**
 * P(a > b) from the members' preferences, by the same rules read on the margin d = P - 1/2 so that
 * P(a > b) = 1 - P(b > a) still holds: mean; min, the margin every member grants (the smallest
 * when all favour the same side, 1/2 when they disagree); uncertainty, the mean margin shrunk toward
 * 1/2 by lambda * variance (never past it).
 */
export function aggregatePreferences(prefs: readonly number[], aggregate: Aggregate, lambda: number): number {
  const { mean, variance } = meanAndVariance(prefs);
  if (aggregate === "mean") return mean;
  if (aggregate === "min") {
    const margins = prefs.map((p) => p - 0.5);
    if (margins.every((d) => d > 0)) return 0.5 + Math.min(...margins);
    if (margins.every((d) => d < 0)) return 0.5 + Math.max(...margins);
    return 0.5;
  }
  const d = mean - 0.5;
  return 0.5 + Math.sign(d) * Math.max(0, Math.abs(d) - lambda * variance);
}

function sumUsage(members: readonly Oracle[]): OracleUsage {
  const total = emptyUsage();
  for (const m of members) {
    const u = m.usage();
    total.calls += u.calls;
    total.retries += u.retries;
    total.cacheHits += u.cacheHits;
    total.failures += u.failures;
    total.promptTokens += u.promptTokens;
    total.completionTokens += u.completionTokens;
    total.budgetExhausted ||= u.budgetExhausted;
  }
  return total;
}

/**
 * The ensemble of already built members. Pointwise when every member is (scores aggregated per
 * candidate, then the ensemble's link), pairwise otherwise (each member's own preference, aggregated).
 */
export function ensembleOracle(members: readonly Oracle[], options: EnsembleOptions): Oracle {
  const need = options.minMembers ?? members.length;
  if (members.length === 0) throw new RangeError("an ensemble needs at least one member");
  if (!(need >= 1 && need <= members.length)) {
    throw new RangeError(`ensemble: minMembers ${need} must be between 1 and ${members.length}`);
  }
  const { aggregate, lambda } = options;
  const failureText = (reasons: string[], answered: number) =>
    `${answered} of ${members.length} members answered, ${need} needed (${reasons.join("; ")})`;

  const score = async (prompt: string, candidates: readonly string[]): Promise<ScoreResult> => {
    const results = await Promise.all(members.map((m) => m.score(prompt, candidates)));
    const reasons = results.flatMap((r, k) => (r.failed ? [`member ${k}: ${r.failed}`] : []));
    const scores = candidates.map((_, i) => {
      const got = results.flatMap((r) => (r.scores[i] == null ? [] : [r.scores[i]!]));
      return got.length < need ? null : aggregateScores(got, aggregate, lambda);
    });
    const missing = scores.indexOf(null);
    if (missing < 0) return { scores };
    const answered = results.filter((r) => r.scores[missing] != null).length;
    return { scores, failed: `candidate ${missing}: ${failureText(reasons, answered)}` };
  };

  const compare = async (prompt: string, a: string, b: string): Promise<PreferenceResult> => {
    const results = await Promise.all(members.map((m) => m.compare(prompt, a, b)));
    const got = results.flatMap((r) => (r.preference === null ? [] : [r.preference]));
    if (got.length < need) {
      const reasons = results.flatMap((r, k) => (r.preference === null ? [`member ${k}: ${r.failed}`] : []));
      return { preference: null, failed: failureText(reasons, got.length) };
    }
    return { preference: aggregatePreferences(got, aggregate, lambda) };
  };

  const pointwise = members.every((m) => m.mode === "pointwise");
  return makeOracle({
    ...(pointwise ? { score } : { compare }),
    link: options.link,
    usage: () => sumUsage(members),
    close: () => {
      for (const m of members) m.close();
    },
  });
}
