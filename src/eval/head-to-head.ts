import { type HeadToHead, type LengthControlled, lengthControlledWinRate } from "./length-controlled.js";
import { type BootstrapOptions, mean, type WinRateSummary, winRateSummary } from "./winrate.js";

export interface HeadToHeadReport extends WinRateSummary {
  /** Records given, including those whose judgment failed (preference null). */
  nRecords: number;
  /** Mean response lengths in characters over all records. */
  avgModelLength: number;
  avgBaselineLength: number;
  /** AlpacaEval 2.0 length-controlled win rate, null with fewer than 2 judgments. */
  lengthControlled: LengthControlled | null;
}

/**
 * Everything `dno eval` reports for a model against a baseline: win rate (ties as half) with standard
 * error and seeded bootstrap interval over the judged records, lengths over all records, and the
 * length-controlled win rate. Rates are fractions in [0, 1].
 */
export function evaluateHeadToHead(
  records: readonly HeadToHead[],
  options: BootstrapOptions & { instructionDifficulty?: readonly number[] } = {},
): HeadToHeadReport {
  const outcomes = records.flatMap((r) => (r.preference === null ? [] : [r.preference]));
  const { instructionDifficulty, ...bootstrap } = options;
  return {
    ...winRateSummary(outcomes, bootstrap),
    nRecords: records.length,
    avgModelLength: mean(records.map((r) => r.modelLength)),
    avgBaselineLength: mean(records.map((r) => r.baselineLength)),
    lengthControlled: lengthControlledWinRate(
      records,
      instructionDifficulty ? { instructionDifficulty } : {},
    ),
  };
}
