import type {
  JudgeMessage,
  Oracle,
  OracleMode,
  OracleUsage,
  PreferenceResult,
  ScoreResult,
  TextJudgment,
} from "./types.js";

/**
 * How two scores become a preference. `sigmoid`: P(a > b) = sigma((s_a - s_b) / scale), the
 * Bradley-Terry link (scale 1 is the reward-model oracle's P = sigmoid(r(a) - r(b))).
 * `step`: 1 if s_a > s_b, 0.5 if equal, 0 otherwise.
 */
export type Link = { kind: "sigmoid"; scale: number } | { kind: "step" };

export const defaultLink: Link = { kind: "sigmoid", scale: 1 };

export function linkPreference(link: Link, scoreA: number, scoreB: number): number {
  if (link.kind === "step") return scoreA > scoreB ? 1 : scoreA < scoreB ? 0 : 0.5;
  return 1 / (1 + Math.exp(-(scoreA - scoreB) / link.scale));
}

/** A K x K matrix W[i][j] = P(candidate i > candidate j); the diagonal is 0.5; null where failed. */
export type WinRateMatrix = (number | null)[][];

export function winRatesFromScores(scores: readonly (number | null)[], link: Link): WinRateMatrix {
  return scores.map((si, i) =>
    scores.map((sj, j) => (i === j ? 0.5 : si === null || sj === null ? null : linkPreference(link, si, sj))),
  );
}

/**
 * The win-rate estimate of each candidate against the others, r(y_i) = mean_{j != i} W[i][j], over the
 * judgments that did not fail; null when every judgment involving the candidate failed.
 */
export function winRateEstimates(matrix: WinRateMatrix): (number | null)[] {
  return matrix.map((row, i) => {
    let sum = 0;
    let n = 0;
    row.forEach((p, j) => {
      if (j !== i && p !== null) {
        sum += p;
        n++;
      }
    });
    return n === 0 ? null : sum / n;
  });
}

/**
 * Judges every unordered pair once (each comparison is itself position-swapped where the oracle does
 * that) and fills both W[i][j] and W[j][i] = 1 - W[i][j].
 */
export async function pairwiseWinRates(
  compare: (prompt: string, a: string, b: string) => Promise<PreferenceResult>,
  prompt: string,
  candidates: readonly string[],
): Promise<{ matrix: WinRateMatrix; failed?: string }> {
  const k = candidates.length;
  const matrix: WinRateMatrix = Array.from({ length: k }, (_, i) =>
    Array.from({ length: k }, (_, j) => (i === j ? 0.5 : null)),
  );
  const pairs: [number, number][] = [];
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) pairs.push([i, j]);
  const results = await Promise.all(pairs.map(([i, j]) => compare(prompt, candidates[i]!, candidates[j]!)));
  const reasons: string[] = [];
  results.forEach((r, n) => {
    const [i, j] = pairs[n]!;
    if (r.preference === null) {
      reasons.push(`${i} vs ${j}: ${r.failed ?? "failed"}`);
      return;
    }
    matrix[i]![j] = r.preference;
    matrix[j]![i] = 1 - r.preference;
  });
  if (reasons.length === 0) return { matrix };
  return { matrix, failed: `${reasons.length} of ${pairs.length} comparisons failed (${reasons[0]})` };
}

interface OracleParts {
  score?: (prompt: string, candidates: readonly string[]) => Promise<ScoreResult>;
  compare?: (prompt: string, a: string, b: string) => Promise<PreferenceResult>;
  ask?: (system: string, messages: readonly JudgeMessage[]) => Promise<TextJudgment>;
  /** Which of the two is native when both are given. */
  mode?: OracleMode;
  link: Link;
  usage: () => OracleUsage;
  close?: () => void;
}

/**
 * One `Oracle` from whichever judging function is native, the other derived: scores become a
 * preference through the link; pairwise judgments become scores as win-rate estimates.
 */
export function makeOracle(parts: OracleParts): Oracle {
  const { link } = parts;
  const nativeScore = parts.score;
  const nativeCompare = parts.compare;
  if (!nativeScore && !nativeCompare) throw new Error("makeOracle: needs score or compare");
  const compare =
    nativeCompare ??
    (async (prompt: string, a: string, b: string): Promise<PreferenceResult> => {
      const r = await nativeScore!(prompt, [a, b]);
      const [sa, sb] = r.scores;
      if (sa == null || sb == null) return { preference: null, failed: r.failed ?? "no score" };
      return { preference: linkPreference(link, sa, sb) };
    });
  const score =
    nativeScore ??
    (async (prompt: string, candidates: readonly string[]): Promise<ScoreResult> => {
      const { matrix, failed } = await pairwiseWinRates(compare, prompt, candidates);
      return failed ? { scores: winRateEstimates(matrix), failed } : { scores: winRateEstimates(matrix) };
    });
  return {
    mode: parts.mode ?? (nativeScore ? "pointwise" : "pairwise"),
    link,
    score,
    compare,
    prefer: async (prompt, a, b) => (await compare(prompt, a, b)).preference,
    ...(parts.ask && { ask: parts.ask }),
    usage: parts.usage,
    close: parts.close ?? (() => {}),
  };
}
