/**
 * The chain task's programmatic oracle (src/demo/chain.ts), loaded by path from its dno.yaml:
 * `score` is the outcome check (1 right, 0 wrong), what MCTS judges a finished chain by and what
 * instance-level pairs rank by; `prefer` is the same check as a preference, for the evaluations.
 */
import { chainPreference, isCorrect } from "./chain.js";

export function score(prompt: string, candidates: readonly string[]): number[] {
  return candidates.map((c) => (isCorrect(prompt, c) ? 1 : 0));
}

export const prefer = chainPreference;
