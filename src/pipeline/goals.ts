/**
 * Reward-augmented DPO in a run (config `pairs.reward_augmented`): the goal-conditioned relabelling of
 * each iteration's pairs (src/core/reward-augmented.ts), and the prompt a policy is given when it
 * generates. A policy that has been trained on goal-conditioned pairs (pi_2 onward) is asked for the
 * highest goal; pi_1 never saw a goal and gets the plain prompt. The oracle always judges against the
 * plain prompt.
 */
import type { Candidate, Pair } from "../core/pairs.js";
import { conditionPrompt, type GoalOptions, relabelWithGoals } from "../core/reward-augmented.js";
import type { RunConfig } from "./config.js";

interface Conditioning {
  template: string;
  goal: GoalOptions;
  highest: number;
  qualityOf: (c: Candidate) => number | null;
}

function conditioning(config: RunConfig): Conditioning | undefined {
  const ra = config.pairs.reward_augmented;
  if (ra === undefined) return undefined;
  const scores = config.pairs.rule === "score";
  return {
    template: ra.template,
    goal: { decimals: ra.decimals ?? (scores ? 0 : 1) },
    highest: ra.highest_goal ?? (scores ? 6 : 1),
    qualityOf: scores ? (c) => c.score ?? null : (c) => c.winRate ?? null,
  };
}

/** The run's pairs for one prompt, relabelled with goals when the config asks for it. */
export function goalPairs(config: RunConfig, pairs: Pair[], candidates: readonly Candidate[]): Pair[] {
  const c = conditioning(config);
  return c ? relabelWithGoals(pairs, candidates, c.qualityOf, c.goal) : pairs;
}

/** The prompt text a pair is trained on: conditioned on its goal when it has one. */
export function pairPrompt(config: RunConfig, prompt: string, goal: number | undefined): string {
  const c = conditioning(config);
  return c === undefined || goal === undefined ? prompt : conditionPrompt(c.template, prompt, goal, c.goal);
}

/** What policy pi_k is given to generate from `prompt`. */
export function generationPrompt(config: RunConfig, k: number): (prompt: string) => string {
  const c = conditioning(config);
  if (c === undefined || k < 2) return (prompt) => prompt;
  return (prompt) => conditionPrompt(c.template, prompt, c.highest, c.goal);
}
