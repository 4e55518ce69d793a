import { Rng } from "../core/rng.js";
import { crossValidatedL1Logistic, DEFAULT_CS, fitL1Logistic, type SoftLabelData, sigmoid } from "./glm.js";
import { mean, quantileSorted, standardErrorOfMean } from "./winrate.js";

/**
 * Length-controlled win rate after AlpacaEval 2.0 (Dubois et al. 2024, "length_controlled_v1"):
 *
 *   logit P(model beats baseline | x) = w_len * tanh(delta / sd(delta)) + w_diff * difficulty(x) + w_model
 *
 * with delta = len(baseline) - len(model) in characters (scaled, not centred), fitted as an
 * L1-regularised logistic regression on the soft preferences with C chosen by 5-fold cross-validation.
 * The LC win rate is the model's predicted win rate with the length term set to zero, averaged over
 * every instruction. The leaderboard's fit also takes AlpacaEval's gamed-baseline rows (its baseline
 * prompted to be verbose and to be concise): they share w_len and w_diff, have the model indicator at
 * 0, and weigh lambda / 2 = 0.1 each, which ties the length slope to the judge's known length bias.
 * Differences from AlpacaEval's scikit-learn fit are listed in the README.
 */

/** AlpacaEval's `regularize_to_baseline_lambda`, shared by its two gamed baselines. */
export const GAMED_BASELINE_LAMBDA = 0.2;
const GAMED_ROW_WEIGHT = GAMED_BASELINE_LAMBDA / 2;

/** One row of AlpacaEval's df_gamed.csv, already featurised by AlpacaEval. */
export interface GamedRow {
  /** P(gamed baseline beats the baseline) in [0, 1]; null rows are left out of the fit. */
  preference: number | null;
  /** `std_delta_len`: the length difference already divided by its standard deviation (tanh applied here). */
  stdDeltaLen: number;
  difficulty: number;
  /** False for the gamed rows (indicator 0, weight 0.1); a true row counts like one of the model's. */
  notGamedBaseline: boolean;
}

export interface HeadToHead {
  /** P(model beats baseline) in [0, 1], 0.5 a tie; null when the judgment is missing (not fitted). */
  preference: number | null;
  modelLength: number;
  baselineLength: number;
}

export interface LengthControlOptions {
  /** Per-record instruction difficulty (AlpacaEval's precomputed covariate); the term is left out without it. */
  instructionDifficulty?: readonly number[];
  /** AlpacaEval's gamed-baseline rows, fitted with the records (needs `instructionDifficulty`). */
  gamedRows?: readonly GamedRow[];
  /** Fix C instead of cross-validating it. */
  C?: number;
  folds?: number;
  Cs?: readonly number[];
}

export interface LengthControlled {
  /** LC win rate in [0, 1]. */
  winRate: number;
  /** Standard error of the mean of the per-instruction predictions (AlpacaEval's lc_standard_error). */
  standardError: number;
  /** Fitted coefficients of the GLM (difficulty is null when the term was not used). */
  coefficients: { length: number; difficulty: number | null; model: number };
  C: number;
  /** Records used to fit (with a judgment). */
  nFit: number;
  /** Gamed-baseline rows in the fit (0 without them). */
  nGamed: number;
  /** Sample standard deviation of the length difference used to scale it (NaN or 0: the length feature is 0). */
  lengthScale: number;
}

function sampleStd(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
}

/**
 * Fits the GLM and returns the LC win rate, or null when fewer than 2 records carry a judgment.
 * With identical (or constantly offset) lengths the length feature is 0 and the fit is the
 * model term alone, so LC is the raw win rate shrunk only by the L1 penalty.
 */
export function lengthControlledWinRate(
  records: readonly HeadToHead[],
  options: LengthControlOptions = {},
): LengthControlled | null {
  const difficulty = options.instructionDifficulty;
  const gamed = options.gamedRows ?? [];
  if (difficulty && difficulty.length !== records.length)
    throw new RangeError(
      `instructionDifficulty has ${difficulty.length} values for ${records.length} records`,
    );
  if (gamed.length > 0 && !difficulty)
    throw new RangeError("gamed-baseline rows need the instruction difficulty of every record");
  records.forEach((r, i) => {
    if (r.preference !== null && !(r.preference >= 0 && r.preference <= 1))
      throw new RangeError(`record ${i}: preference must be in [0, 1] or null, got ${r.preference}`);
  });
  gamed.forEach((g, i) => {
    if (g.preference !== null && !(g.preference >= 0 && g.preference <= 1))
      throw new RangeError(`gamed row ${i}: preference must be in [0, 1] or null, got ${g.preference}`);
  });
  const deltas = records.map((r) => r.baselineLength - r.modelLength);
  const sd = sampleStd(deltas);
  const scaled = (delta: number): number => (sd > 0 ? Math.tanh(delta / sd) : 0);

  const features = difficulty ? 3 : 2;
  const row = (i: number, lengthFeature: number): number[] =>
    difficulty ? [lengthFeature, difficulty[i]!, 1] : [lengthFeature, 1];

  const judged = records.flatMap((r, i) => (r.preference === null ? [] : [i]));
  if (judged.length < 2) return null;
  // Gamed rows first, as AlpacaEval concatenates them (the order decides the cross-validation folds).
  const fitted = gamed.filter((g) => g.preference !== null);
  const gamedX = fitted.flatMap((g) => [Math.tanh(g.stdDeltaLen), g.difficulty, g.notGamedBaseline ? 1 : 0]);
  const data: SoftLabelData = {
    x: Float64Array.from([...gamedX, ...judged.flatMap((i) => row(i, scaled(deltas[i]!)))]),
    features,
    p: Float64Array.from([
      ...fitted.map((g) => g.preference!),
      ...judged.map((i) => records[i]!.preference!),
    ]),
    ...(fitted.length > 0 && {
      s: Float64Array.from([
        ...fitted.map((g) => (g.notGamedBaseline ? 1 : GAMED_ROW_WEIGHT)),
        ...judged.map(() => 1),
      ]),
    }),
  };
  let w: Float64Array;
  let C: number;
  if (options.C !== undefined) {
    C = options.C;
    w = fitL1Logistic(data, C);
  } else {
    const fit = crossValidatedL1Logistic(data, { Cs: options.Cs ?? DEFAULT_CS, folds: options.folds ?? 5 });
    w = fit.w;
    C = fit.C;
  }

  const predictions = records.map((_, i) => {
    const x = row(i, 0);
    let z = 0;
    for (let j = 0; j < features; j++) z += x[j]! * w[j]!;
    return sigmoid(z);
  });
  return {
    winRate: mean(predictions),
    standardError: standardErrorOfMean(predictions),
    coefficients: difficulty
      ? { length: w[0]!, difficulty: w[1]!, model: w[2]! }
      : { length: w[0]!, difficulty: null, model: w[1]! },
    C,
    nFit: judged.length,
    nGamed: fitted.length,
    lengthScale: sd,
  };
}

/**
 * Percentile bootstrap interval of the LC win rate: records (with their difficulty) resampled with
 * replacement (the gamed-baseline rows, if any, kept as they are) and the GLM refitted at the C chosen on the full data (C is not re-cross-validated per
 * resample, so the interval leaves out the variability of that choice). Resamples with fewer than 2
 * judgments are skipped. Seeded by `Rng.derive(seed, "bootstrap-lc")`.
 */
export function lengthControlledInterval(
  records: readonly HeadToHead[],
  fit: LengthControlled,
  options: {
    seed?: number;
    resamples?: number;
    confidence?: number;
    instructionDifficulty?: readonly number[];
    gamedRows?: readonly GamedRow[];
  } = {},
): [number, number] {
  const n = records.length;
  const resamples = options.resamples ?? 1000;
  const confidence = options.confidence ?? 0.95;
  const rng = Rng.derive(options.seed ?? 0, "bootstrap-lc");
  const difficulty = options.instructionDifficulty;
  const values: number[] = [];
  for (let b = 0; b < resamples; b++) {
    const idx = Array.from({ length: n }, () => rng.int(n));
    const sample = idx.map((i) => records[i]!);
    const refit = lengthControlledWinRate(sample, {
      C: fit.C,
      ...(difficulty && { instructionDifficulty: idx.map((i) => difficulty[i]!) }),
      ...(options.gamedRows && { gamedRows: options.gamedRows }),
    });
    if (refit) values.push(refit.winRate);
  }
  if (values.length === 0) return [Number.NaN, Number.NaN];
  const sorted = Float64Array.from(values).sort();
  const alpha = (1 - confidence) / 2;
  return [quantileSorted(sorted, alpha), quantileSorted(sorted, 1 - alpha)];
}
