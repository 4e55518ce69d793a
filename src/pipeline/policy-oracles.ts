/**
 * Oracles that need the policy, built here where the policy lives and handed to src/oracle as
 * programmatic oracles (src/oracle judges text and knows no weights):
 *
 * - `implicit-reward` (DICE, Chen et al. 2024): the DPO implicit reward of the last trained iterate
 *   against its reference, r(x, y) = beta (log pi_t(y|x) - log pi_{t-1}(y|x)), shaped by length,
 *   r - length_penalty * |y| (characters, as the authors' code counts them).
 * - `self` (Self-Rewarding LMs, Yuan et al. 2024): pi_t is its own pointwise judge, each response
 *   shown alone in our pointwise rubric template; the score is read from a greedy answer (our JSON
 *   format) or, for small models trained to answer with the bare number, as the exact expected score
 *   under pi_t's distribution over the answers min_score..max_score.
 */
import { join } from "node:path";
import { z } from "zod";
import { softmax } from "../core/prob.js";
import { charLength } from "../eval/winrate.js";
import { canonicalJson, JudgmentCache, sha256Hex } from "../oracle/cache.js";
import {
  loadTemplate,
  type Oracle,
  oracleConfigSchema,
  parsePointwiseAnswer,
  programmaticOracle,
} from "../oracle/index.js";
import { cachedOracle, openRunOracle, type RunOracle, runOracleOf } from "./oracle.js";
import { policyPath } from "./paths.js";
import { loadPolicy, sampleResponses, sequenceLogprobs } from "./policy.js";

export const implicitRewardConfigSchema = z.strictObject({
  kind: z.literal("implicit-reward"),
  /** The DPO beta of the implicit reward; it only scales scores (pairs depend on their order). */
  beta: z.number().positive().max(1e6).default(0.1),
  /** DICE's length-regularised shaping: minus this much per character of the response. */
  length_penalty: z.number().min(0).max(1e6).default(0),
});

export const selfJudgeConfigSchema = z.strictObject({
  kind: z.literal("self"),
  /** A jinja file with our pointwise template's variables (relative to the config); default: ours. */
  template: z.string().min(1).optional(),
  min_score: z.number().int().min(-1e6).max(1e6).default(0),
  max_score: z.number().int().min(-1e6).max(1e6).default(6),
  /** generate: a greedy answer in our JSON format; expected: the exact mean of the bare-number answers. */
  readout: z.enum(["generate", "expected"]).default("generate"),
  max_new_tokens: z
    .number()
    .int()
    .positive()
    .max(1 << 20)
    .default(256),
});

/** What labels the training candidates: any oracle of src/oracle, or one built on the policy. */
export const trainOracleConfigSchema = z.discriminatedUnion("kind", [
  ...oracleConfigSchema.options,
  implicitRewardConfigSchema,
  selfJudgeConfigSchema,
]);
export type TrainOracleConfig = z.infer<typeof trainOracleConfigSchema>;

/** Oracles that need a trained iterate, so their first iteration trains on the offline file instead. */
export const OFFLINE_FIRST_KINDS: readonly string[] = ["implicit-reward"];

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
  if (config.kind !== "implicit-reward" && config.kind !== "self") return openRunOracle(config, runDir);
  const cache = new JudgmentCache(join(runDir, "oracle-cache.sqlite"));
  let calls = 0;
  const [oracle, identity] =
    config.kind === "implicit-reward"
      ? [implicitRewardOracle(config, runDir, t), { config, t }]
      : selfJudgeOracle(config, runDir, t);
  const cached = cachedOracle(oracle, sha256Hex(canonicalJson(identity)), cache, () => {
    calls++;
  });
  return runOracleOf(cached, cache, () => calls);
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

function selfJudgeOracle(
  config: z.infer<typeof selfJudgeConfigSchema>,
  runDir: string,
  t: number,
): [Oracle, unknown] {
  const template = loadTemplate("pointwise", config.template);
  const { min_score: min, max_score: max } = config;
  const answers = Array.from({ length: max - min + 1 }, (_, i) => String(min + i));
  let policy: ReturnType<typeof loadPolicy> | undefined;
  const judgePrompt = (prompt: string, response: string) =>
    template.render({ prompt, candidates: [{ id: "1", text: response }], min_score: min, max_score: max });
  const score = async (prompt: string, candidates: readonly string[]): Promise<number[]> => {
    policy ??= loadPolicy(join(runDir, policyPath(t)));
    const prompts = candidates.map((c) => judgePrompt(prompt, c));
    if (config.readout === "expected") {
      const lp = sequenceLogprobs(
        policy,
        prompts.flatMap((p) => answers.map((response) => ({ prompt: p, response }))),
      );
      return prompts.map((_, i) => {
        const probs = softmax(lp.subarray(i * answers.length, (i + 1) * answers.length));
        return answers.reduce((sum, a, s) => sum + Number(a) * probs[s]!, 0);
      });
    }
    const judged = await sampleResponses(policy, prompts, {
      samplesPerPrompt: 1,
      temperature: 0,
      topP: 1,
      topK: 0,
      maxNewTokens: config.max_new_tokens,
      seed: 0,
    });
    return judged.map((samples) => {
      const parsed = parsePointwiseAnswer(samples[0]!.text, ["1"], min, max);
      if (typeof parsed === "string") throw new Error(`pi_${t} as judge: ${parsed}`);
      return parsed.scores.get("1")!;
    });
  };
  return [programmaticOracle({ score }), { config, template: template.source, t }];
}
