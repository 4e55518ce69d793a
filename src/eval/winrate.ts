import { Rng } from "../core/rng.js";

/**
 * One head-to-head judgment: the probability that the model's response beats the baseline's,
 * 1 = model wins, 0 = baseline wins, 0.5 = tie; values in between are soft (weighted) judgments.
 */
export type Outcome = number;

export interface BootstrapOptions {
  /** Seed of the resampling; the same seed gives the same interval. Default 0. */
  seed?: number;
  /** Number of bootstrap resamples. Default 2000. */
  resamples?: number;
  /** Coverage of the interval. Default 0.95. */
  confidence?: number;
}

export interface WinRateSummary {
  /** Mean outcome in [0, 1], ties counted as half. NaN when n = 0. */
  winRate: number;
  /** Sample standard deviation (n - 1) of the outcomes over sqrt(n). NaN when n < 2. */
  standardError: number;
  /** `discreteWinRate` of the outcomes. */
  discreteWinRate: number;
  /** Percentile bootstrap interval of the win rate, [lower, upper]. NaN when n = 0. */
  ci: [number, number];
  confidence: number;
  n: number;
  /** Outcomes above 0.5 (model wins), below 0.5 (baseline wins), exactly 0.5. */
  wins: number;
  losses: number;
  ties: number;
}

export function mean(xs: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i]!;
  return sum / xs.length;
}

/** Standard error of the mean with the unbiased (n - 1) variance; NaN when n < 2. */
export function standardErrorOfMean(xs: ArrayLike<number>): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const m = mean(xs);
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - m) ** 2;
  return Math.sqrt(ss / (n - 1) / n);
}

/** Quantile of sorted values with linear interpolation between order statistics. */
export function quantileSorted(sorted: Float64Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Percentile bootstrap confidence interval of the mean of `xs`, seeded. */
export function bootstrapMeanCI(xs: ArrayLike<number>, options: BootstrapOptions = {}): [number, number] {
  const n = xs.length;
  if (n === 0) return [Number.NaN, Number.NaN];
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  if (!(resamples >= 1)) throw new RangeError(`bootstrap resamples must be >= 1, got ${resamples}`);
  if (!(confidence > 0 && confidence < 1))
    throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  const rng = Rng.derive(options.seed ?? 0, "bootstrap-mean");
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += xs[rng.int(n)]!;
    means[b] = sum / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  return [quantileSorted(means, alpha), quantileSorted(means, 1 - alpha)];
}

/**
 * The win rate after rounding each outcome to a verdict (above 0.5 a win, below a loss, 0.5 a draw
 * counted half): AlpacaEval's discrete_win_rate. NaN when there are none.
 */
export function discreteWinRate(outcomes: readonly Outcome[]): number {
  return mean(outcomes.map((o) => (o === 0.5 ? 0.5 : Math.round(o))));
}

/** Win rate (ties as half), its standard error, a seeded bootstrap interval and the counts. */
export function winRateSummary(outcomes: readonly Outcome[], options: BootstrapOptions = {}): WinRateSummary {
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i]!;
    if (!(o >= 0 && o <= 1)) throw new RangeError(`outcome ${i} must be in [0, 1], got ${o}`);
  }
  let wins = 0;
  let losses = 0;
  for (const o of outcomes) {
    if (o > 0.5) wins++;
    else if (o < 0.5) losses++;
  }
  return {
    winRate: outcomes.length === 0 ? Number.NaN : mean(outcomes),
    standardError: standardErrorOfMean(outcomes),
    discreteWinRate: discreteWinRate(outcomes),
    ci: bootstrapMeanCI(outcomes, options),
    confidence: options.confidence ?? 0.95,
    n: outcomes.length,
    wins,
    losses,
    ties: outcomes.length - wins - losses,
  };
}

/** Length of a response in Unicode code points (what Python's `len` and pandas' `str.len` count). */
export function charLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
