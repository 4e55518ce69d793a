import {
  type HeadToHead,
  type LengthControlled,
  lengthControlledInterval,
  lengthControlledWinRate,
} from "./length-controlled.js";
import { type BootstrapOptions, mean, type WinRateSummary, winRateSummary } from "./winrate.js";

export interface HeadToHeadOptions extends BootstrapOptions {
  /** Bootstrap refits for the LC interval; 0 skips it. Default 1000. */
  lcResamples?: number;
  instructionDifficulty?: readonly number[];
}

export interface HeadToHeadReport extends WinRateSummary {
  /** Records given, including those whose judgment failed (preference null). */
  nRecords: number;
  /** Mean response lengths in characters over all records. */
  avgModelLength: number;
  avgBaselineLength: number;
  /** AlpacaEval 2.0 length-controlled win rate, null with fewer than 2 judgments. */
  lengthControlled: LengthControlled | null;
  /** Bootstrap interval of the LC win rate at the same confidence; null when LC is null or the interval is skipped. */
  lengthControlledCI: [number, number] | null;
}

/**
 * Everything `dno eval` reports for a model against a baseline: win rate (ties as half) with standard
 * error and seeded bootstrap interval over the judged records, lengths over all records, and the
 * length-controlled win rate with its interval. Rates are fractions in [0, 1].
 */
export function evaluateHeadToHead(
  records: readonly HeadToHead[],
  options: HeadToHeadOptions = {},
): HeadToHeadReport {
  const outcomes = records.flatMap((r) => (r.preference === null ? [] : [r.preference]));
  const { instructionDifficulty, lcResamples = 1000, ...bootstrap } = options;
  const difficulty = instructionDifficulty ? { instructionDifficulty } : {};
  const lengthControlled = lengthControlledWinRate(records, difficulty);
  return {
    ...winRateSummary(outcomes, bootstrap),
    nRecords: records.length,
    avgModelLength: mean(records.map((r) => r.modelLength)),
    avgBaselineLength: mean(records.map((r) => r.baselineLength)),
    lengthControlled,
    lengthControlledCI:
      lengthControlled && lcResamples > 0
        ? lengthControlledInterval(records, lengthControlled, {
            ...bootstrap,
            ...difficulty,
            resamples: lcResamples,
          })
        : null,
  };
}
