/**
 * `dno.yaml`: the whole run in one validated object. Every field has a default except the model, the
 * prompts and the oracle; errors name the file and the field path.
 */

import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { OBJECTIVE_NAMES } from "../core/objectives.js";
import { goalTemplateProblem } from "../core/reward-augmented.js";
import { loraOptionsSchema } from "../model/lora.js";
import { PRECISIONS } from "../model/precision.js";
import { envName, reliabilityFields } from "../oracle/config.js";
import { type OracleConfig, oracleConfigSchema } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readYamlFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";
import { benchmarkConfigSchema, mapBenchmarkPaths } from "./benchmark.js";
import { guardsConfigSchema } from "./guards.js";
import { OFFLINE_FIRST_KINDS, trainOracleConfigSchema } from "./policy-oracles.js";
import { spoOptionsSchema } from "./spo.js";

/** A Llama-family architecture trained from scratch, with the built-in byte-level tokenizer. */
const fromScratchSchema = z.strictObject({
  hidden_size: z.number().int().positive().max(65536),
  intermediate_size: z.number().int().positive().max(262144),
  num_hidden_layers: z.number().int().positive().max(1024),
  num_attention_heads: z.number().int().positive().max(1024),
  num_key_value_heads: z.number().int().positive().max(1024).optional(),
  max_position_embeddings: z
    .number()
    .int()
    .positive()
    .max(1 << 20)
    .default(256),
  rope_theta: z.number().positive().max(1e9).default(10000),
  tie_word_embeddings: z.boolean().default(true),
});

const optimizerFields = {
  lr: z.number().positive().max(10),
  batch_size: z
    .number()
    .int()
    .positive()
    .max(1 << 20)
    .default(16),
  epochs: z.number().positive().max(10000).default(1),
  warmup_steps: z.number().int().min(0).max(1e9).default(0),
  weight_decay: z.number().min(0).max(10).default(0),
  grad_clip: z.number().positive().max(1e6).default(1),
  /** Training progress is saved this often (seconds; 0: every step), so a kill loses at most this much. */
  checkpoint_seconds: z.number().min(0).max(86400).default(300),
};

/** Where samples come from (src/pipeline/sampler.ts; `openai`: src/pipeline/remote.ts). */
const samplerSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("engine") }),
  z.strictObject({
    kind: z.literal("openai"),
    /** The server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1; with `launch`, `{port}` is its port. */
    baseUrl: z.string().min(1),
    /** The model name the server serves. */
    model: z.string().min(1),
    apiKeyEnv: envName.optional(),
    concurrency: reliabilityFields.concurrency,
    timeoutMs: reliabilityFields.timeoutMs,
    maxRetries: reliabilityFields.maxRetries,
    retryBaseMs: reliabilityFields.retryBaseMs,
    retryMaxMs: reliabilityFields.retryMaxMs,
    /** Serve pi_t for each sample and eval stage: a sh command template, stopped when the stage ends. */
    launch: z
      .strictObject({
        /** {policy} = the checkpoint directory, {policy_gguf} = it exported to GGUF, {port}, {seed}. */
        command: z.string().min(1),
        /** Fixed port; default: a free one. */
        port: z.number().int().min(1).max(65535).optional(),
        /** Polled until it answers 200; default: baseUrl + /models. `{port}` is replaced. */
        ready: z.string().min(1).optional(),
        readyTimeoutMs: z.number().int().positive().default(600_000),
        env: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
  }),
]);

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
  threads: z.number().int().positive().max(1024).optional(),
  /** Matrix-product precision of every model in the run (src/model/precision.ts); --precision overrides. */
  precision: z.enum(PRECISIONS).optional(),
  model: z
    .strictObject({
      /** A Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json). */
      path: z.string().min(1).optional(),
      from_scratch: fromScratchSchema.optional(),
      /** Activation recomputation in training (engine: CausalLM.recompute; TRL: gradient_checkpointing). */
      recompute: z.boolean().optional(),
    })
    .refine((m) => (m.path === undefined) !== (m.from_scratch === undefined), {
      message: "give exactly one of model.path and model.from_scratch",
    }),
  /** Supervised fine-tuning on gold answers before the first iteration (pi_ref = the SFT model). */
  sft: z
    .strictObject({
      data: z.string().min(1),
      /**
       * Reward-augmented DPO: also train on every gold answer conditioned on the highest goal, so pi_1
       * already knows the goal it will be asked for (and samples under it from iteration 1).
       */
      goal_conditioned: z.boolean().optional(),
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
    prompts_per_iteration: z.number().int().positive().max(1e9).optional(),
  }),
  /** The judge: evaluation, and the training labels unless `train_oracle` is given. */
  oracle: oracleConfigSchema,
  /** What labels the training candidates instead of `oracle` (e.g. DICE's implicit-reward). */
  train_oracle: trainOracleConfigSchema.optional(),
  /** A module exporting `metrics(items, logprobs)`: task-specific numbers for each evaluation. */
  task_metrics: z.string().min(1).optional(),
  iterations: z.number().int().positive().max(1000).default(3),
  sampling: z
    .strictObject({
      samples_per_prompt: z.number().int().positive().max(1024).default(5),
      temperature: z.number().min(0).max(100).default(0.7),
      top_p: z.number().gt(0).max(1).default(0.95),
      top_k: z
        .number()
        .int()
        .min(0)
        .max(1 << 24)
        .default(0),
      /** Also checked against the model's context (with each prompt) before a run starts. */
      max_new_tokens: z
        .number()
        .int()
        .positive()
        .max(1 << 20)
        .default(64),
      include_gold: z.boolean().default(true),
    })
    .prefault({}),
  pairs: z
    .strictObject({
      /** score: the paper's 6-point rule; win-rate: large margins on r^; spin: gold over own sample. */
      rule: z.enum(["score", "win-rate", "spin", "prompted"]).default("win-rate"),
      /** prompted: the worse-answer prefix of each iteration (the last one repeats), widest gap first. */
      negative_prefixes: z.array(z.string().min(1)).min(1).max(1000).optional(),
      min_positive: z.number().min(-1e6).max(1e6).optional(),
      margin: z.number().min(0).max(1e6).optional(),
      student_margin: z.number().min(0).max(1e6).optional(),
      pairs_per_prompt: z.number().int().positive().max(1024).default(1),
      positive_sources: z
        .array(z.enum(["teacher", "student"]))
        .min(1)
        .default(["teacher", "student"]),
      replay: z.array(z.number().min(0).max(1)).max(100).default([0.3, 0.15]),
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
      /**
       * Reward-augmented DPO (arXiv 2410.08067): each pair becomes two goal-conditioned pairs, and the
       * policy generates and is evaluated conditioned on `highest_goal` (src/pipeline/goals.ts).
       */
      reward_augmented: z
        .strictObject({
          /** prefix: the template is the user message; system: a system message before the plain prompt. */
          conditioning: z.enum(["prefix", "system"]).default("prefix"),
          /** prefix: holds {goal} and {prompt}; system: holds {goal}. Default DEFAULT_GOAL_TEMPLATES. */
          template: z.string().min(1).max(10000).optional(),
          /** Digits of a goal; default 0 for the score rule, 1 for win rates. */
          decimals: z.number().int().min(0).max(6).optional(),
          /** The goal asked for at generation; default 6 (the rubric's top) or 1 (win rates). */
          highest_goal: z.number().min(-1e6).max(1e6).optional(),
        })
        .optional(),
      defects: z
        .strictObject({
          n: z.number().int().positive().max(64).default(3),
          max_repeat_fraction: z.number().min(0).max(1).default(0.4),
        })
        .prefault({}),
    })
    .refine((p) => p.reward_augmented === undefined || p.rule === "score" || p.rule === "win-rate", {
      message: "reward_augmented relabels judged pairs: it needs pairs.rule score or win-rate",
      path: ["reward_augmented"],
    })
    .prefault({}),
  /**
   * MCTS-DPO (arXiv 2405.00451): a tree search over reasoning steps replaces sampling, judging and
   * the pair rule; the run trains on step-level pairs (src/pipeline/search.ts).
   */
  search: z
    .strictObject({
      kind: z.literal("mcts").default("mcts"),
      /** Steps the policy proposes at each expansion (distinct ones are kept). */
      children: z.number().int().min(2).max(64).default(3),
      /** Search iterations per committed step; the first step gets first_step_factor times more. */
      simulations: z.number().int().positive().max(10000).default(4),
      first_step_factor: z.number().int().positive().max(100).default(4),
      c_puct: z.number().min(0).max(1e6).default(1),
      length_penalty: z.number().min(0).max(10).default(1.25),
      gamma: z.number().min(0).max(1).default(1),
      depth_limit: z.number().int().positive().max(1000).default(8),
      delimiter: z.string().min(1).max(100).default(";"),
      max_step_tokens: z
        .number()
        .int()
        .positive()
        .max(1 << 20)
        .default(16),
      temperature: z.number().gt(0).max(100).default(1),
      /** An oracle score at least this is a correct outcome (+1), below it a wrong one (-1). */
      correct_score: z.number().min(-1e6).max(1e6).default(1),
      /**
       * The paper's self-evaluation: the policy's P(yes) / (P(yes) + P(no)) after `template` (holding
       * {prompt} and {steps}), times `weight`, is added to every step's value. Off by default: a model
       * must have learnt to judge steps for it to mean anything.
       */
      self_eval: z
        .strictObject({
          weight: z.number().positive().max(1e6),
          template: z.string().max(10000).default("{prompt}{steps}\nright?"),
          yes: z.string().min(1).max(100).default("y"),
          no: z.string().min(1).max(100).default("n"),
        })
        .refine((e) => e.template.includes("{prompt}") && e.template.includes("{steps}"), {
          message: "the template must contain {prompt} and {steps}",
          path: ["template"],
        })
        .optional(),
    })
    .optional(),
  objective: z
    .strictObject({
      name: z.enum(OBJECTIVE_NAMES as [string, ...string[]]).default("dno-prct"),
      beta: z.number().positive().max(1e6).default(0.1),
      tau: z.number().min(0).max(1e6).optional(),
      /** selm: weight of the optimism term. */
      alpha: z.number().min(0).max(1e6).optional(),
      /** SPO's self-supervised preference-degree loss, added with `weight` (src/core/spo.ts). */
      spo: spoOptionsSchema.optional(),
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
      lr: z.number().positive().max(10).default(5e-5),
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
      samples_per_prompt: z.number().int().positive().max(1024).default(4),
      temperature: z.number().min(0).max(100).default(1),
      top_p: z.number().gt(0).max(1).default(1),
      /** Also evaluate Algorithm 1's output, the uniform mixture of the iterates pi_1..pi_T. */
      mixture: z.boolean().default(false),
      /** MT-Bench or Arena-Hard on every policy (src/pipeline/benchmark.ts). */
      benchmark: benchmarkConfigSchema.optional(),
    })
    .prefault({}),
  guards: guardsConfigSchema,
});

export type RunConfig = z.infer<typeof runConfigSchema>;

/** Iteration 1 of a run whose labels come from the policy trains on the offline preference file. */
export function offlineFirstRound(config: RunConfig): boolean {
  return config.train_oracle !== undefined && OFFLINE_FIRST_KINDS.includes(config.train_oracle.kind);
}

/** Cross-field rules that one field's schema cannot say. */
function crossFieldIssues(c: RunConfig): { path: string[]; message: string }[] {
  const issues: { path: string[]; message: string }[] = [];
  if (c.pairs.rule === "win-rate" && c.sampling.samples_per_prompt < 2) {
    issues.push({
      path: ["sampling", "samples_per_prompt"],
      message: "the win-rate rule rates each sample against the others: needs at least 2",
    });
  }
  const ra = c.pairs.reward_augmented;
  const templateProblem = ra?.template && goalTemplateProblem(ra.conditioning, ra.template);
  if (templateProblem) {
    issues.push({ path: ["pairs", "reward_augmented", "template"], message: templateProblem });
  }
  if (c.sft?.goal_conditioned && !ra) {
    issues.push({
      path: ["sft", "goal_conditioned"],
      message: "conditions gold answers on the highest goal: needs pairs.reward_augmented",
    });
  }
  const arch = c.model.from_scratch;
  if (arch) {
    if (arch.hidden_size % arch.num_attention_heads !== 0) {
      issues.push({
        path: ["model", "from_scratch", "hidden_size"],
        message: `${arch.hidden_size} is not a multiple of num_attention_heads ${arch.num_attention_heads}`,
      });
    }
    if (c.sampling.max_new_tokens >= arch.max_position_embeddings) {
      issues.push({
        path: ["sampling", "max_new_tokens"],
        message: `${c.sampling.max_new_tokens} leaves no room for a prompt in the context of ${arch.max_position_embeddings} (model.from_scratch.max_position_embeddings)`,
      });
    }
  }
  return issues;
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
  const p = parsed.data.pairs;
  if (parsed.data.search && (p.offline || p.reward_augmented || p.offline_data || parsed.data.train_oracle)) {
    throw new DnoError(
      `${where}: search: MCTS builds its own step-level pairs, judged by the oracle; it cannot be combined with pairs.offline, pairs.offline_data, pairs.reward_augmented or train_oracle`,
    );
  }
  if (parsed.data.objective.spo && parsed.data.trainer.kind !== "engine") {
    throw new DnoError(`${where}: objective.spo: SPO's degree loss is trained by the engine trainer only`);
  }
  if (offlineFirstRound(parsed.data) && !parsed.data.pairs.offline_data) {
    throw new DnoError(
      `${where}: train_oracle.kind ${parsed.data.train_oracle!.kind} needs pairs.offline_data (iteration 1 trains on that file: there is no trained iterate to ask yet)`,
    );
  }
  const issue = crossFieldIssues(parsed.data)[0];
  if (issue) throw new DnoError(`${where}: ${issue.path.join(".")}: ${issue.message}`);
  return resolvePaths(parsed.data, dirname(resolve(where)));
}

export function loadRunConfig(file: string): RunConfig {
  return parseRunConfig(readYamlFile(file), file);
}

/** File paths in a config are relative to the config file; inside a run they are absolute. */
function resolvePaths(config: RunConfig, baseDir: string): RunConfig {
  return mapConfigPaths(config, (p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
}

/**
 * A copy of `config` with `f` applied to every file path in it (`field`: its path in the config).
 * `run_dir` is included, and judgment caches (files the run writes) too.
 */
export function mapConfigPaths(config: RunConfig, f: (path: string, field: string) => string): RunConfig {
  const out: RunConfig = structuredClone(config);
  out.run_dir = f(out.run_dir, "run_dir");
  if (out.model.path) out.model.path = f(out.model.path, "model.path");
  if (out.sft) out.sft.data = f(out.sft.data, "sft.data");
  out.data.prompts = f(out.data.prompts, "data.prompts");
  out.data.eval = f(out.data.eval, "data.eval");
  if (out.data.validation) out.data.validation = f(out.data.validation, "data.validation");
  mapOraclePaths(out.oracle, "oracle", f);
  const train = out.train_oracle;
  if (train?.kind === "self") {
    if (train.template) train.template = f(train.template, "train_oracle.template");
  } else if (train !== undefined && train.kind !== "implicit-reward")
    mapOraclePaths(train, "train_oracle", f);
  if (out.pairs.offline_data)
    out.pairs.offline_data.file = f(out.pairs.offline_data.file, "pairs.offline_data.file");
  if (out.task_metrics) out.task_metrics = f(out.task_metrics, "task_metrics");
  if (out.eval.benchmark)
    mapBenchmarkPaths(out.eval.benchmark, (p, field) => f(p, `eval.benchmark.${field}`));
  return out;
}

function mapOraclePaths(
  oracle: OracleConfig,
  field: string,
  f: (path: string, field: string) => string,
): void {
  if (oracle.kind === "ensemble") {
    for (const [i, m] of oracle.members.entries()) mapOraclePaths(m, `${field}.members[${i}]`, f);
    return;
  }
  if (oracle.kind === "programmatic") oracle.module = f(oracle.module, `${field}.module`);
  if ("cache" in oracle && oracle.cache) oracle.cache = f(oracle.cache, `${field}.cache`);
  if (oracle.kind === "llm-judge") {
    const t = oracle.templates;
    if (t.pointwise) t.pointwise = f(t.pointwise, `${field}.templates.pointwise`);
    if (t.pairwise) t.pairwise = f(t.pairwise, `${field}.templates.pairwise`);
  }
}

/** Every file path in `config`, keyed by its field. */
export function configPaths(config: RunConfig): Record<string, string> {
  const paths: Record<string, string> = {};
  mapConfigPaths(config, (p, field) => {
    paths[field] = p;
    return p;
  });
  return paths;
}
