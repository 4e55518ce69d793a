/**
 * Reward-augmented DPO in a run (config `pairs.reward_augmented`): the goal-conditioned relabelling of
 * each iteration's pairs (src/core/reward-augmented.ts), and the prompt a policy is given when it
 * generates. A policy that has been trained on goals (pi_2 onward, or pi_1 after `sft.goal_conditioned`)
 * is asked for the highest goal; otherwise it gets the plain prompt. The goal is a prefix of the user
 * message or a system message (`conditioning`), rendered by the policy's chat template (policy.ts
 * `encodePromptText`). The oracle always judges against the plain prompt.
 */
import type { Candidate, Pair } from "../core/pairs.js";
import {
  type ConditionedPrompt,
  conditionPrompt,
  DEFAULT_GOAL_TEMPLATES,
  type GoalConditioning,
  type GoalOptions,
  relabelWithGoals,
} from "../core/reward-augmented.js";
import type { RunConfig } from "./config.js";

interface Conditioning {
  kind: GoalConditioning;
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
    kind: ra.conditioning,
    template: ra.template ?? DEFAULT_GOAL_TEMPLATES[ra.conditioning],
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

/** The prompt a pair is trained on: conditioned on its goal when it has one. */
export function pairPrompt(config: RunConfig, prompt: string, goal: number | undefined): ConditionedPrompt {
  const c = conditioning(config);
  return c === undefined || goal === undefined ? { user: prompt } : conditionPrompt(c, prompt, goal, c.goal);
}

/** Each prompt conditioned on the highest goal (the plain prompt without reward augmentation). */
export function highestGoalPrompt(config: RunConfig): (prompt: string) => ConditionedPrompt {
  const c = conditioning(config);
  if (c === undefined) return (prompt) => ({ user: prompt });
  return (prompt) => conditionPrompt(c, prompt, c.highest, c.goal);
}

/** What policy pi_k is given to generate from a prompt. */
export function generationPrompt(config: RunConfig, k: number): (prompt: string) => ConditionedPrompt {
  const trainedOnGoals = k >= 2 || config.sft?.goal_conditioned === true;
  return trainedOnGoals ? highestGoalPrompt(config) : (prompt) => ({ user: prompt });
}
