/**
 * `dno.yaml`: the whole run in one validated object. Every field has a default except the model, the
 * prompts and the oracle; errors name the file and the field path.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { OBJECTIVE_NAMES } from "../core/objectives.js";
import { loraOptionsSchema } from "../model/lora.js";
import { type OracleConfig, oracleConfigSchema } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readYamlFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";
import { guardsConfigSchema } from "./guards.js";
import { OFFLINE_FIRST_KINDS, trainOracleConfigSchema } from "./policy-oracles.js";

/** A Llama-family architecture trained from scratch, with the built-in byte-level tokenizer. */
const fromScratchSchema = z
  .strictObject({
    hidden_size: z.number().int().positive().describe("width of the residual stream"),
    intermediate_size: z.number().int().positive().describe("width of the SwiGLU MLP"),
    num_hidden_layers: z.number().int().positive().describe("decoder layers"),
    num_attention_heads: z.number().int().positive().describe("query heads (hidden_size must divide by it)"),
    num_key_value_heads: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("key/value heads for grouped-query attention (default: num_attention_heads)"),
    max_position_embeddings: z
      .number()
      .int()
      .positive()
      .default(64)
      .describe("longest prompt + response in tokens (bytes)"),
    rope_theta: z.number().positive().default(10000).describe("RoPE base frequency"),
    tie_word_embeddings: z.boolean().default(true).describe("share the input embedding and the lm_head"),
  })
  .describe("a tiny Llama trained from scratch with the built-in byte-level tokenizer");

const optimizerFields = {
  lr: z.number().positive().describe("peak learning rate (AdamW)"),
  batch_size: z.number().int().positive().default(16).describe("examples (SFT) or pairs (DNO) per step"),
  epochs: z
    .number()
    .positive()
    .default(1)
    .describe("passes over the data; a fraction takes part of the last pass"),
  warmup_steps: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe("steps of linear warm-up from 0 to lr; then linear decay to 0 at the last step"),
  weight_decay: z.number().min(0).default(0).describe("AdamW's decoupled weight decay"),
  grad_clip: z.number().positive().default(1).describe("the gradient's global norm is clipped to this"),
};

/** Where samples come from (src/pipeline/sampler.ts). */
const samplerSchema = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("engine") }).describe("the native engine, in this process"),
  ])
  .describe("where samples come from");

/** Who trains pi_{t+1} (src/pipeline/trainer.ts; the command contract is in README "External trainers"). */
const trainerSchema = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("engine") }).describe("the native engine, in this process"),
    z
      .strictObject({
        kind: z.literal("command"),
        command: z
          .string()
          .min(1)
          .describe("a sh command template: {pairs}, {policy}, {out}, {args} are replaced by quoted paths"),
        env: z
          .record(z.string(), z.string())
          .optional()
          .describe("variables added to the command's environment"),
      })
      .describe("a program that trains pi_{t+1} (README: External trainers)"),
  ])
  .describe("who trains pi_{t+1}");

export const runConfigSchema = z.strictObject({
  seed: z
    .number()
    .int()
    .min(0)
    .max(0xffffffff)
    .default(1)
    .describe("every random choice (init, partitions, sampling, shuffles) derives from it"),
  run_dir: z
    .string()
    .min(1)
    .default("run")
    .describe("the run directory (state, samples, pairs, checkpoints, report), relative to the config file"),
  threads: z.number().int().positive().optional().describe("engine threads (default: all cores)"),
  model: z
    .strictObject({
      path: z
        .string()
        .min(1)
        .optional()
        .describe("a Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json)"),
      from_scratch: fromScratchSchema.optional(),
    })
    .refine((m) => (m.path === undefined) !== (m.from_scratch === undefined), {
      message: "give exactly one of model.path and model.from_scratch",
    })
    .describe("the initial policy: exactly one of path and from_scratch"),
  sft: z
    .strictObject({
      data: z.string().min(1).describe('JSONL of {"id", "prompt", "gold"}: the gold answers to imitate'),
      ...optimizerFields,
    })
    .optional()
    .describe("supervised fine-tuning on gold answers before the first iteration (pi_ref = the SFT model)"),
  data: z
    .strictObject({
      prompts: z
        .string()
        .min(1)
        .describe('JSONL of {"id", "prompt", "gold"?}: split into `iterations` non-overlapping partitions'),
      eval: z
        .string()
        .min(1)
        .describe('held-out JSONL of {"id", "prompt", "gold"?}: evaluation after every iteration'),
      validation: z
        .string()
        .min(1)
        .optional()
        .describe("held-out JSONL that chooses the best iterate (without it the result is the last iterate)"),
      prompts_per_iteration: z
        .number()
        .int()
        .positive()
        .optional()
        .describe("prompts in each iteration's partition (default: all prompts / iterations)"),
    })
    .describe("prompt files, relative to the config file"),
  oracle: oracleConfigSchema.describe(
    "the judge (any `dno judge` config): evaluation, and the training labels unless train_oracle is given",
  ),
  train_oracle: trainOracleConfigSchema
    .optional()
    .describe("what labels the training candidates instead of `oracle` (e.g. DICE's implicit reward)"),
  task_metrics: z
    .string()
    .min(1)
    .optional()
    .describe(
      "a module exporting metrics(items, logprobs) -> { name: number }, called on every evaluation; items are " +
        "{ prompt, gold, samples } per held-out prompt, logprobs(items of { prompt, response }) gives exact " +
        "log-probs under the evaluated policy",
    ),
  iterations: z.number().int().positive().default(3).describe("DNO iterations T"),
  sampling: z
    .strictObject({
      samples_per_prompt: z.number().int().positive().default(5).describe("K samples of pi_t per prompt"),
      temperature: z.number().min(0).default(0.7).describe("sampling temperature (0 = greedy)"),
      top_p: z.number().gt(0).max(1).default(0.95).describe("nucleus sampling mass (1 = off)"),
      top_k: z.number().int().min(0).default(0).describe("keep the k most likely tokens (0 = off)"),
      max_new_tokens: z
        .number()
        .int()
        .positive()
        .default(64)
        .describe("longest response (also in evaluation)"),
      include_gold: z
        .boolean()
        .default(true)
        .describe("the prompt's gold answer joins the K samples as a candidate (the teacher)"),
    })
    .prefault({})
    .describe("how pi_t's candidates are drawn"),
  pairs: z
    .strictObject({
      rule: z
        .enum(["score", "win-rate", "spin", "prompted"])
        .default("win-rate")
        .describe(
          "win-rate: large margins on r^; score: the paper's 6-point rule; spin: gold over own sample; " +
            "prompted: the policy's answer over its answer to a worse-answer prefix",
        ),
      negative_prefixes: z
        .array(z.string().min(1))
        .min(1)
        .optional()
        .describe(
          "prompted: the worse-answer prefix of each iteration (the last one repeats), widest gap first",
        ),
      min_positive: z
        .number()
        .optional()
        .describe("a chosen response's least win rate (win-rate: 0.5) or score (score: 5)"),
      margin: z
        .number()
        .min(0)
        .optional()
        .describe("least gap between chosen and rejected (win-rate: 0.3; score: 2)"),
      student_margin: z
        .number()
        .min(0)
        .optional()
        .describe("the margin when the chosen response is the policy's own (win-rate: 0.3; score: 1)"),
      pairs_per_prompt: z.number().int().positive().default(1).describe("pairs taken per prompt at most"),
      positive_sources: z
        .array(z.enum(["teacher", "student"]))
        .min(1)
        .default(["teacher", "student"])
        .describe("who may be chosen: [teacher] is DNO-Restrictive"),
      replay: z
        .array(z.number().min(0).max(1))
        .default([0.3, 0.15])
        .describe("share of pairs replayed from iterations t-1, t-2, ..."),
      offline: z
        .boolean()
        .default(false)
        .describe("train every iteration on the first iteration's pairs (offline DPO)"),
      offline_data: z
        .strictObject({
          file: z.string().min(1).describe("JSONL of {id?, prompt, chosen, rejected}"),
          fraction: z.number().min(0).lt(1).default(0.5).describe("its share of every iteration's pairs"),
        })
        .optional()
        .describe(
          "an offline preference file replayed into every iteration (DICE's experience replay); with a " +
            "policy-built train_oracle, iteration 1 trains on this file alone (DICE's first DPO round)",
        ),
      defects: z
        .strictObject({
          n: z.number().int().positive().default(3).describe("n-gram length (words)"),
          max_repeat_fraction: z
            .number()
            .min(0)
            .max(1)
            .default(0.4)
            .describe("a sample is defective when more of its n-grams repeat"),
        })
        .prefault({})
        .describe("degenerate samples (repeated n-grams) are automatic negatives"),
    })
    .prefault({})
    .describe("which candidates become (chosen, rejected) pairs"),
  objective: z
    .strictObject({
      name: z
        .enum(OBJECTIVE_NAMES as [string, ...string[]])
        .default("dno-prct")
        .describe("the loss (src/core/objectives.ts)"),
      beta: z
        .number()
        .positive()
        .default(0.1)
        .describe(
          "KL strength: how far pi_{t+1} may move from the reference per iteration (smaller moves more)",
        ),
      tau: z
        .number()
        .min(0)
        .optional()
        .describe("INPO's and Nash-MD's regularisation towards pi_1 (needs 0 <= tau <= beta)"),
      alpha: z.number().min(0).optional().describe("selm: the weight of the optimism term"),
    })
    .refine((o) => !["inpo", "nash-md"].includes(o.name) || (o.tau !== undefined && o.tau <= o.beta), {
      message: "inpo and nash-md need tau, with 0 <= tau <= beta",
      path: ["tau"],
    })
    .refine((o) => o.name !== "selm" || o.alpha !== undefined, {
      message: "selm needs alpha (the optimism weight, >= 0)",
      path: ["alpha"],
    })
    .prefault({})
    .describe("the preference objective"),
  train: z
    .strictObject({
      ...optimizerFields,
      lr: z.number().positive().default(5e-5).describe("peak learning rate (AdamW) of the first iteration"),
      lr_decay: z
        .number()
        .positive()
        .max(1)
        .default(1)
        .describe("multiplies the learning rate at every iteration after the first (the paper lowers it)"),
      lora: loraOptionsSchema
        .optional()
        .describe(
          "train a LoRA adapter on pi_t each iteration (base frozen); pi_{t+1} is pi_t with it merged",
        ),
    })
    .prefault({})
    .describe("each iteration's training on its pairs"),
  sampler: samplerSchema.default({ kind: "engine" }),
  trainer: trainerSchema.default({ kind: "engine" }),
  eval: z
    .strictObject({
      samples_per_prompt: z.number().int().positive().default(4).describe("samples per held-out prompt"),
      temperature: z.number().min(0).default(1).describe("sampling temperature of evaluation"),
      top_p: z.number().gt(0).max(1).default(1).describe("nucleus sampling mass of evaluation"),
      mixture: z
        .boolean()
        .default(false)
        .describe("also evaluate Algorithm 1's output, the uniform mixture of the iterates pi_1..pi_T"),
    })
    .prefault({})
    .describe("evaluation after every iteration: against pi_t, pi_1 and the teacher"),
  guards: guardsConfigSchema,
});

export type RunConfig = z.infer<typeof runConfigSchema>;

/** Iteration 1 of a run whose labels come from the policy trains on the offline preference file. */
export function offlineFirstRound(config: RunConfig): boolean {
  return config.train_oracle !== undefined && OFFLINE_FIRST_KINDS.includes(config.train_oracle.kind);
}
export type RunConfigInput = z.input<typeof runConfigSchema>;

/** Validates a config object; `where` (a file name) prefixes the message. */
export function parseRunConfig(value: unknown, where: string): RunConfig {
  const parsed = runConfigSchema.safeParse(value);
  if (!parsed.success) throw new DnoError(`${where}: ${describeZodError(parsed.error)}`);
  if (parsed.data.pairs.rule === "prompted" && !parsed.data.pairs.negative_prefixes) {
    throw new DnoError(
      `${where}: pairs.rule prompted needs pairs.negative_prefixes (one per iteration, widest gap first)`,
    );
  }
  if (offlineFirstRound(parsed.data) && !parsed.data.pairs.offline_data) {
    throw new DnoError(
      `${where}: train_oracle.kind ${parsed.data.train_oracle!.kind} needs pairs.offline_data (iteration 1 trains on that file: there is no trained iterate to ask yet)`,
    );
  }
  return resolvePaths(parsed.data, dirname(resolve(where)));
}

export function loadRunConfig(file: string): RunConfig {
  return parseRunConfig(readYamlFile(file), file);
}

/** File paths in a config are relative to the config file; inside a run they are absolute. */
function resolvePaths(config: RunConfig, baseDir: string): RunConfig {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const out: RunConfig = structuredClone(config);
  out.run_dir = at(out.run_dir);
  if (out.model.path) out.model.path = at(out.model.path);
  if (out.sft) out.sft.data = at(out.sft.data);
  out.data.prompts = at(out.data.prompts);
  out.data.eval = at(out.data.eval);
  if (out.data.validation) out.data.validation = at(out.data.validation);
  resolveOraclePaths(out.oracle, at);
  const train = out.train_oracle;
  if (train?.kind === "self") {
    if (train.template) train.template = at(train.template);
  } else if (train !== undefined && train.kind !== "implicit-reward") resolveOraclePaths(train, at);
  if (out.pairs.offline_data) out.pairs.offline_data.file = at(out.pairs.offline_data.file);
  if (out.task_metrics) out.task_metrics = at(out.task_metrics);
  return out;
}

function resolveOraclePaths(oracle: OracleConfig, at: (p: string) => string): void {
  if (oracle.kind === "ensemble") {
    for (const m of oracle.members) resolveOraclePaths(m, at);
    return;
  }
  if (oracle.kind === "programmatic") oracle.module = at(oracle.module);
  if ("cache" in oracle && oracle.cache) oracle.cache = at(oracle.cache);
  if (oracle.kind === "llm-judge") {
    const t = oracle.templates;
    if (t.pointwise) t.pointwise = at(t.pointwise);
    if (t.pairwise) t.pairwise = at(t.pairwise);
  }
}
