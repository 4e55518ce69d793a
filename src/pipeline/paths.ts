/** Where a run directory keeps its iterates. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DnoError } from "../util/errors.js";

export const policyPath = (t: number): string => `checkpoints/pi_${t}`;
export const iterDir = (t: number): string => `iterations/${t}`;
/** The evaluation of the mixture of iterates. */
export const MIXTURE_DIR = "iterations/mixture";

/**
 * Algorithm 1's iterates pi_1..pi_T of a run directory: every checkpoint whose successor exists (the
 * policies that sampled, were judged and were improved on; pi_{T+1} is the last iterate).
 */
export function mixtureIterates(runDir: string): string[] {
  const dirs: string[] = [];
  for (let k = 1; existsSync(join(runDir, policyPath(k + 1))); k++) dirs.push(join(runDir, policyPath(k)));
  if (dirs.length === 0) {
    throw new DnoError(
      `${runDir}: no finished iteration (no ${policyPath(2)}); the mixture of iterates needs at least one`,
    );
  }
  return dirs;
}
