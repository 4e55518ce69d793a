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
import { OFFLINE_FIRST_KINDS, trainOracleConfigSchema } from "./policy-oracles.js";

/** A Llama-family architecture trained from scratch, with the built-in byte-level tokenizer. */
const fromScratchSchema = z.strictObject({
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().optional(),
  max_position_embeddings: z.number().int().positive().default(64),
  rope_theta: z.number().positive().default(10000),
  tie_word_embeddings: z.boolean().default(true),
});

const optimizerFields = {
  lr: z.number().positive(),
  batch_size: z.number().int().positive().default(16),
  epochs: z.number().positive().default(1),
  warmup_steps: z.number().int().min(0).default(0),
  weight_decay: z.number().min(0).default(0),
  grad_clip: z.number().positive().default(1),
};

/** Where samples come from (src/pipeline/sampler.ts). */
const samplerSchema = z.discriminatedUnion("kind", [z.strictObject({ kind: z.literal("engine") })]);

/** Who trains pi_{t+1} (src/pipeline/trainer.ts; the command contract is in README "External trainers"). */
const trainerSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("engine") }),
  z.strictObject({
    kind: z.literal("command"),
    /** A sh command template: {pairs}, {policy}, {out}, {args} are replaced by quoted paths. */
    command: z.string().min(1),
    env: z.record(z.string(), z.string()).optional(),
  }),
]);

export const runConfigSchema = z.strictObject({
  seed: z.number().int().min(0).max(0xffffffff).default(1),
  /** The run directory (state, samples, pairs, checkpoints, report), relative to the config file. */
  run_dir: z.string().min(1).default("run"),
  threads: z.number().int().positive().optional(),
  model: z
    .strictObject({
      /** A Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json). */
      path: z.string().min(1).optional(),
      from_scratch: fromScratchSchema.optional(),
    })
    .refine((m) => (m.path === undefined) !== (m.from_scratch === undefined), {
      message: "give exactly one of model.path and model.from_scratch",
    }),
  /** Supervised fine-tuning on gold answers before the first iteration (pi_ref = the SFT model). */
  sft: z
    .strictObject({
      data: z.string().min(1),
      ...optimizerFields,
    })
    .optional(),
  data: z.strictObject({
    /** JSONL of {id, prompt, gold?}; split into `iterations` non-overlapping partitions. */
    prompts: z.string().min(1),
    /** Held-out JSONL of {id, prompt, gold?}: evaluation after every iteration. */
    eval: z.string().min(1),
    /** Held-out JSONL used only to choose the best iterate. */
    validation: z.string().min(1).optional(),
    prompts_per_iteration: z.number().int().positive().optional(),
  }),
  /** The judge: evaluation, and the training labels unless `train_oracle` is given. */
  oracle: oracleConfigSchema,
  /** What labels the training candidates instead of `oracle` (e.g. DICE's implicit-reward). */
  train_oracle: trainOracleConfigSchema.optional(),
  /** A module exporting `metrics(items, logprobs)`: task-specific numbers for each evaluation. */
  task_metrics: z.string().min(1).optional(),
  iterations: z.number().int().positive().default(3),
  sampling: z
    .strictObject({
      samples_per_prompt: z.number().int().positive().default(5),
      temperature: z.number().min(0).default(0.7),
      top_p: z.number().gt(0).max(1).default(0.95),
      top_k: z.number().int().min(0).default(0),
      max_new_tokens: z.number().int().positive().default(64),
      include_gold: z.boolean().default(true),
    })
    .prefault({}),
  pairs: z
    .strictObject({
      /** score: the paper's 6-point rule; win-rate: large margins on r^; spin: gold over own sample. */
      rule: z.enum(["score", "win-rate", "spin", "prompted"]).default("win-rate"),
      /** prompted: the worse-answer prefix of each iteration (the last one repeats), widest gap first. */
      negative_prefixes: z.array(z.string().min(1)).min(1).optional(),
      min_positive: z.number().optional(),
      margin: z.number().min(0).optional(),
      student_margin: z.number().min(0).optional(),
      pairs_per_prompt: z.number().int().positive().default(1),
      positive_sources: z
        .array(z.enum(["teacher", "student"]))
        .min(1)
        .default(["teacher", "student"]),
      replay: z.array(z.number().min(0).max(1)).default([0.3, 0.15]),
      /** Train every iteration on the first iteration's pairs (offline DPO). */
      offline: z.boolean().default(false),
      /**
       * An offline preference file (JSONL {id?, prompt, chosen, rejected}) replayed into every
       * iteration as `fraction` of its pairs (DICE's experience replay); with a policy-built
       * train_oracle, iteration 1 trains on this file alone (DICE's first DPO round).
       */
      offline_data: z
        .strictObject({ file: z.string().min(1), fraction: z.number().min(0).lt(1).default(0.5) })
        .optional(),
      defects: z
        .strictObject({
          n: z.number().int().positive().default(3),
          max_repeat_fraction: z.number().min(0).max(1).default(0.4),
        })
        .prefault({}),
    })
    .prefault({}),
  objective: z
    .strictObject({
      name: z.enum(OBJECTIVE_NAMES as [string, ...string[]]).default("dno-prct"),
      beta: z.number().positive().default(0.1),
      tau: z.number().min(0).optional(),
      /** selm: weight of the optimism term. */
      alpha: z.number().min(0).optional(),
    })
    .refine((o) => !["inpo", "nash-md"].includes(o.name) || (o.tau !== undefined && o.tau <= o.beta), {
      message: "inpo and nash-md need tau, with 0 <= tau <= beta",
      path: ["tau"],
    })
    .refine((o) => o.name !== "selm" || o.alpha !== undefined, {
      message: "selm needs alpha (the optimism weight, >= 0)",
      path: ["alpha"],
    })
    .prefault({}),
  train: z
    .strictObject({
      ...optimizerFields,
      lr: z.number().positive().default(5e-5),
      /** Multiplies the learning rate at every iteration after the first (the paper lowers it). */
      lr_decay: z.number().positive().max(1).default(1),
      /** Train a LoRA adapter on pi_t each iteration (base frozen); pi_{t+1} is pi_t with it merged. */
      lora: loraOptionsSchema.optional(),
    })
    .prefault({}),
  sampler: samplerSchema.default({ kind: "engine" }),
  trainer: trainerSchema.default({ kind: "engine" }),
  eval: z
    .strictObject({
      samples_per_prompt: z.number().int().positive().default(4),
      temperature: z.number().min(0).default(1),
      top_p: z.number().gt(0).max(1).default(1),
      /** Also evaluate Algorithm 1's output, the uniform mixture of the iterates pi_1..pi_T. */
      mixture: z.boolean().default(false),
    })
    .prefault({}),
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
