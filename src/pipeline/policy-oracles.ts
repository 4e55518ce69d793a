/**
 * Oracles that need the policy, built here where the policy lives and handed to src/oracle as
 * programmatic oracles (src/oracle judges text and knows no weights):
 *
 * - `implicit-reward` (DICE, Chen et al. 2024): the DPO implicit reward of the last trained iterate
 *   against its reference, r(x, y) = beta (log pi_t(y|x) - log pi_{t-1}(y|x)), shaped by length,
 *   r - length_penalty * |y| (characters, as the authors' code counts them).
 */
import { join } from "node:path";
import { z } from "zod";
import { charLength } from "../eval/winrate.js";
import { canonicalJson, JudgmentCache, sha256Hex } from "../oracle/cache.js";
import { type Oracle, oracleConfigSchema, programmaticOracle } from "../oracle/index.js";
import { cachedOracle, openRunOracle, type RunOracle, runOracleOf } from "./oracle.js";
import { policyPath } from "./paths.js";
import { loadPolicy, sequenceLogprobs } from "./policy.js";

export const implicitRewardConfigSchema = z.strictObject({
  kind: z.literal("implicit-reward"),
  /** The DPO beta of the implicit reward; it only scales scores (pairs depend on their order). */
  beta: z.number().positive().default(0.1),
  /** DICE's length-regularised shaping: minus this much per character of the response. */
  length_penalty: z.number().min(0).default(0),
});

/** What labels the training candidates: any oracle of src/oracle, or one built on the policy. */
export const trainOracleConfigSchema = z.discriminatedUnion("kind", [
  ...oracleConfigSchema.options,
  implicitRewardConfigSchema,
]);
export type TrainOracleConfig = z.infer<typeof trainOracleConfigSchema>;

/** Oracles that score with the policy; their first iteration has no trained iterate to ask. */
export const POLICY_ORACLE_KINDS: readonly string[] = ["implicit-reward"];

/**
 * The oracle that labels iteration t's candidates. Judgments go to the run's cache under the config
 * and t (the iterates of a run directory are fixed by its config and seed), so a resumed run pays for
 * nothing twice.
 */
export async function openTrainOracle(
  config: TrainOracleConfig,
  runDir: string,
  t: number,
): Promise<RunOracle> {
  if (config.kind !== "implicit-reward") return openRunOracle(config, runDir);
  const cache = new JudgmentCache(join(runDir, "oracle-cache.sqlite"));
  let calls = 0;
  const oracle = cachedOracle(
    implicitRewardOracle(config, runDir, t),
    sha256Hex(canonicalJson({ config, t })),
    cache,
    () => {
      calls++;
    },
  );
  return runOracleOf(oracle, cache, () => calls);
}

function implicitRewardOracle(
  config: z.infer<typeof implicitRewardConfigSchema>,
  runDir: string,
  t: number,
): Oracle {
  if (t < 2) throw new RangeError("the implicit reward needs a trained iterate: t >= 2");
  let policies: ReturnType<typeof loadPolicy>[] | undefined;
  return programmaticOracle({
    score: (prompt, candidates) => {
      policies ??= [loadPolicy(join(runDir, policyPath(t))), loadPolicy(join(runDir, policyPath(t - 1)))];
      const items = candidates.map((response) => ({ prompt, response }));
      const [now, before] = policies.map((p) => sequenceLogprobs(p, items));
      return candidates.map(
        (c, i) => config.beta * (now![i]! - before![i]!) - config.length_penalty * charLength(c),
      );
    },
  });
}
