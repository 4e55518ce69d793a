/**
 * Where an iteration's training pairs come from. Every method writes the same product,
 * iterations/t/pairs.jsonl (`PairRow`s with the ids to train on), through its own resumable stages;
 * run.ts asks the run's source once per iteration and then references, trains and evaluates alike.
 *
 *   instance-pairs.ts   t/sample, t/annotate, t/pairs: K whole responses of pi_t per prompt, judged,
 *                       then a pair rule (DNO-Prct and every instance-level method)
 *   search.ts           t/search: MCTS over reasoning steps, step-level pairs (MCTS-DPO)
 *
 * A new way of building pairs is one more implementation of `PairSource`, not a branch in run.ts.
 */
import type { PairComposition } from "../core/pairs.js";
import type { RunConfig } from "./config.js";
import type { PromptRow } from "./data.js";
import { instancePairs } from "./instance-pairs.js";
import type { RunOracle } from "./oracle.js";
import type { Sampler } from "./sampler.js";
import { searchPairs } from "./search.js";
import type { ProgressFn, StageFn } from "./stages.js";

export interface IterationPairs {
  /** Who is preferred over whom in the iteration's own pairs (replayed ones aside). */
  composition: PairComposition;
  /** What building them cost (policy tokens sampled, oracle calls); absent where nothing was sampled. */
  spent?: { tokens: number; judgments: number };
}

export interface PairSource {
  /** Runs (or, when finished, verifies and skips) the stages that write iterations/t/pairs.jsonl. */
  pairs(t: number, prompts: readonly PromptRow[]): Promise<IterationPairs>;
}

export interface PairSourceContext {
  config: RunConfig;
  runDir: string;
  oracle: RunOracle;
  sampler: Sampler;
  progress: ProgressFn;
  stage: StageFn;
}

/** The run's pair source, chosen once from its config. */
export function createPairSource(ctx: PairSourceContext): PairSource {
  return ctx.config.search ? searchPairs(ctx) : instancePairs(ctx);
}
