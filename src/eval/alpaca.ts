import { z } from "zod";
import { csvColumn, readCsv } from "../util/csv.js";
import { DnoError } from "../util/errors.js";
import { readJsonFile, readTextFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";
import {
  type GamedRow,
  type HeadToHead,
  type LengthControlled,
  type LengthControlOptions,
  lengthControlledWinRate,
} from "./length-controlled.js";
import { charLength, discreteWinRate, mean, standardErrorOfMean } from "./winrate.js";

/**
 * AlpacaEval annotation records: output_1 is the baseline, output_2 the model, preference in [1, 2]
 * (1 = baseline wins, 2 = model wins, values between are soft), 1.5 or 0 a draw, null (or no field, as
 * pandas reads it) a missing judgment.
 */
const preferenceSchema = z
  .number()
  .refine((v) => v === 0 || (v >= 1 && v <= 2), {
    message: "expected a number in [1, 2], 0 (a draw) or null (no judgment)",
  })
  .nullish()
  .transform((v) => v ?? null);

export const alpacaAnnotationSchema = z.looseObject({
  instruction: z.string(),
  output_1: z.string(),
  output_2: z.string(),
  preference: preferenceSchema,
  generator_1: z.string().optional(),
  generator_2: z.string().optional(),
});
export type AlpacaAnnotation = z.infer<typeof alpacaAnnotationSchema>;

/** The metrics of AlpacaEval's leaderboard CSV; rates in percent. */
export interface AlpacaMetrics {
  win_rate: number;
  standard_error: number;
  n_wins: number;
  n_wins_base: number;
  n_draws: number;
  n_total: number;
  discrete_win_rate: number;
  avg_length: number;
  length_controlled_winrate: number | null;
  lc_standard_error: number | null;
}

/** Reads an AlpacaEval annotations.json (a JSON array of records); errors name the file and record index. */
export function readAlpacaAnnotations(file: string): AlpacaAnnotation[] {
  const value = readJsonFile(file);
  if (!Array.isArray(value)) throw new DnoError(`${file}: expected a JSON array of annotation records`);
  if (value.length === 0) throw new DnoError(`${file}: no annotation records`);
  const records = value.map((record, i) => {
    const parsed = alpacaAnnotationSchema.safeParse(record);
    if (!parsed.success) throw new DnoError(`${file}: record ${i}: ${describeZodError(parsed.error)}`);
    return parsed.data;
  });
  if (!value.some((record) => typeof record === "object" && record !== null && "preference" in record))
    throw new DnoError(`${file}: no record has a "preference" field`);
  const models = new Set(records.map((r) => r.generator_2));
  if (models.size > 1)
    throw new DnoError(
      `${file}: records hold several models (generator_2: ${[...models].join(", ")}); one per file`,
    );
  return records;
}

/**
 * Reads AlpacaEval's instruction_difficulty.csv (`index,instruction_difficulty`, index = position of the
 * instruction in the evaluation set) and returns one value per annotation record, by position.
 */
export function readInstructionDifficulty(file: string, records: number): number[] {
  const text = readTextFile(file);
  const byIndex = new Map<number, number>();
  const lines = text.split(/\r?\n/);
  for (let l = 1; l < lines.length; l++) {
    const line = lines[l]!.trim();
    if (line === "") continue;
    const [index, value, ...rest] = line.split(",");
    const i = Number(index);
    const v = Number(value);
    if (rest.length > 0 || !Number.isInteger(i) || i < 0 || value === undefined || !Number.isFinite(v))
      throw new DnoError(`${file}:${l + 1}: expected "index,instruction_difficulty", got "${line}"`);
    byIndex.set(i, v);
  }
  return Array.from({ length: records }, (_, i) => {
    const v = byIndex.get(i);
    if (v === undefined) throw new DnoError(`${file}: no instruction_difficulty for record ${i}`);
    return v;
  });
}

/** AlpacaEval's df_gamed.csv: its gamed-baseline rows and, from them, the difficulty of each instruction. */
export interface GamedAnnotations {
  rows: GamedRow[];
  /** instruction_difficulty by instruction index (the first row of each index, as AlpacaEval takes it). */
  difficultyByIndex: Map<number, number>;
}

/** Parses a number as pandas reads a CSV cell; an empty cell (or NaN) is null. */
function csvNumber(cell: string): number | null {
  const t = cell.trim();
  if (t === "" || t === "NaN" || t === "nan") return null;
  const v = Number(t);
  return Number.isFinite(v) ? v : Number.NaN;
}

/**
 * Reads AlpacaEval's df_gamed.csv (columns `index`, `preference` in [0, 1], `std_delta_len`,
 * `instruction_difficulty`, `not_gamed_baseline`; others, like `model`, are ignored). Errors name the
 * file, the line and the column.
 */
export function readGamedAnnotations(file: string): GamedAnnotations {
  const table = readCsv(file);
  const col = (name: string) => csvColumn(table, file, name);
  const [index, preference, delta, difficulty, notGamed] = [
    col("index"),
    col("preference"),
    col("std_delta_len"),
    col("instruction_difficulty"),
    col("not_gamed_baseline"),
  ];
  if (table.rows.length === 0) throw new DnoError(`${file}: no rows`);
  const rows: GamedRow[] = [];
  const difficultyByIndex = new Map<number, number>();
  for (const { line, cells } of table.rows) {
    const bad = (column: string, expected: string) =>
      new DnoError(
        `${file}:${line}: ${column}: expected ${expected}, got "${cells[table.columns.indexOf(column)]}"`,
      );
    const i = csvNumber(cells[index]!);
    if (i === null || !Number.isInteger(i) || i < 0) throw bad("index", "a non-negative integer");
    const p = csvNumber(cells[preference]!);
    if (p !== null && !(p >= 0 && p <= 1)) throw bad("preference", "a number in [0, 1] or empty");
    const d = csvNumber(cells[delta]!);
    if (d === null || !Number.isFinite(d)) throw bad("std_delta_len", "a number");
    const h = csvNumber(cells[difficulty]!);
    if (h === null || !Number.isFinite(h)) throw bad("instruction_difficulty", "a number");
    const flag = cells[notGamed]!.trim().toLowerCase();
    if (!["true", "false", "1", "0", "1.0", "0.0"].includes(flag))
      throw bad("not_gamed_baseline", "True or False");
    rows.push({
      preference: p,
      stdDeltaLen: d,
      difficulty: h,
      notGamedBaseline: flag.startsWith("t") || flag.startsWith("1"),
    });
    if (!difficultyByIndex.has(i)) difficultyByIndex.set(i, h);
  }
  return { rows, difficultyByIndex };
}

/** The difficulty of each annotation record (by position, as AlpacaEval indexes them) from df_gamed.csv. */
export function gamedDifficulty(gamed: GamedAnnotations, file: string, records: number): number[] {
  return Array.from({ length: records }, (_, i) => {
    const v = gamed.difficultyByIndex.get(i);
    if (v === undefined)
      throw new DnoError(`${file}: no row with index ${i} (the annotations have ${records} records)`);
    return v;
  });
}

/** The preference as P(model wins) in [0, 1], draws (1.5 or 0) as 0.5; null when missing. */
export function preferenceToOutcome(preference: number | null): number | null {
  if (preference === null) return null;
  return preference === 0 ? 0.5 : preference - 1;
}

/**
 * The leaderboard metrics with AlpacaEval's definitions: draws (1.5 or 0) count half and are counted in
 * n_draws; missing preferences are left out of every rate and of n_total; avg_length is the integer part
 * of the mean character length of all model outputs; rates and the standard error are in percent.
 */
export function alpacaMetrics(
  records: readonly AlpacaAnnotation[],
  options: LengthControlOptions = {},
): {
  metrics: AlpacaMetrics;
  lengthControl: LengthControlled | "baseline-is-model" | null;
  /** The records as the LC fit sees them (for `lengthControlledInterval`). */
  headToHead: HeadToHead[];
} {
  const outcomes = records.flatMap((r) => {
    const o = preferenceToOutcome(r.preference);
    return o === null ? [] : [o];
  });
  const modelLengths = records.map((r) => charLength(r.output_2));
  const headToHead = records.map((r, i) => ({
    preference: preferenceToOutcome(r.preference),
    modelLength: modelLengths[i]!,
    baselineLength: charLength(r.output_1),
  }));
  const lengthControl = isBaselineTheModel(records)
    ? ("baseline-is-model" as const)
    : lengthControlledWinRate(headToHead, options);
  const lc = lengthControl === "baseline-is-model" ? 50 : lengthControl ? lengthControl.winRate * 100 : null;
  // AlpacaEval predicts 0.5 for every instruction when the model is its own baseline: a zero spread.
  const lcSe =
    lengthControl === "baseline-is-model" ? 0 : lengthControl ? lengthControl.standardError * 100 : null;
  return {
    metrics: {
      win_rate: mean(outcomes) * 100,
      standard_error: standardErrorOfMean(outcomes) * 100,
      n_wins: outcomes.filter((o) => o > 0.5).length,
      n_wins_base: outcomes.filter((o) => o < 0.5).length,
      n_draws: records.filter((r) => r.preference === 1.5 || r.preference === 0).length,
      n_total: outcomes.length,
      discrete_win_rate: discreteWinRate(outcomes) * 100,
      avg_length: Math.trunc(mean(modelLengths)),
      length_controlled_winrate: lc,
      lc_standard_error: lcSe,
    },
    lengthControl,
    headToHead,
  };
}

/** AlpacaEval fixes LC at 50% when the model is its own baseline. */
function isBaselineTheModel(records: readonly AlpacaAnnotation[]): boolean {
  const baselines = new Set(records.map((r) => r.generator_1));
  const model = records[0]?.generator_2;
  return model !== undefined && baselines.size === 1 && baselines.has(model);
}

/**
 * AlpacaEval's warning rule: an LC win rate below min(wr - wr/4, wr - 10) or above
 * max(wr + (100 - wr)/4, wr + 10) (percent) suggests the GLM failed, e.g. on too few records.
 */
export function isExtremeLengthCorrection(winRate: number, lcWinRate: number): boolean {
  return (
    lcWinRate < Math.min(winRate - winRate / 4, winRate - 10) ||
    lcWinRate > Math.max(winRate + (100 - winRate) / 4, winRate + 10)
  );
}
