/**
 * `dno.yaml`: the whole run in one validated object. Every field has a default except the model, the
 * prompts and the oracle; errors name the file and the field path.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { OBJECTIVE_NAMES } from "../core/objectives.js";
import { oracleConfigSchema } from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readYamlFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";

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

export const runConfigSchema = z
  .strictObject({
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
    oracle: oracleConfigSchema,
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
        rule: z.enum(["score", "win-rate", "spin"]).default("win-rate"),
        min_positive: z.number().optional(),
        margin: z.number().min(0).optional(),
        student_margin: z.number().min(0).optional(),
        pairs_per_prompt: z.number().int().positive().default(1),
        positive_sources: z
          .array(z.enum(["teacher", "student"]))
          .min(1)
          .default(["teacher", "student"]),
        replay: z.array(z.number().min(0).max(1)).default([0.3, 0.15]),
        /**
         * Reward-augmented DPO (arXiv 2410.08067): each pair becomes two goal-conditioned pairs, and the
         * policy generates and is evaluated conditioned on `highest_goal` (src/pipeline/goals.ts).
         */
        reward_augmented: z
          .strictObject({
            /** Holds {goal} and {prompt}. */
            template: z.string().min(1).default("<goal {goal}> {prompt}"),
            /** Digits of a goal; default 0 for the score rule, 1 for win rates. */
            decimals: z.number().int().min(0).max(6).optional(),
            /** The goal asked for at generation; default 6 (the rubric's top) or 1 (win rates). */
            highest_goal: z.number().optional(),
          })
          .optional(),
        /** Train every iteration on the first iteration's pairs (offline DPO). */
        offline: z.boolean().default(false),
        defects: z
          .strictObject({
            n: z.number().int().positive().default(3),
            max_repeat_fraction: z.number().min(0).max(1).default(0.4),
          })
          .prefault({}),
      })
      .refine((p) => p.reward_augmented === undefined || p.rule !== "spin", {
        message: "reward_augmented relabels judged pairs; the spin rule has no quality values",
        path: ["reward_augmented"],
      })
      .refine((p) => p.reward_augmented === undefined || checkedTemplate(p.reward_augmented.template), {
        message: "the template must contain {goal} and {prompt}",
        path: ["reward_augmented", "template"],
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
        children: z.number().int().min(2).default(3),
        /** Search iterations per committed step; the first step gets first_step_factor times more. */
        simulations: z.number().int().positive().default(4),
        first_step_factor: z.number().int().positive().default(4),
        c_puct: z.number().min(0).default(1),
        length_penalty: z.number().min(0).default(1.25),
        gamma: z.number().min(0).max(1).default(1),
        depth_limit: z.number().int().positive().default(8),
        delimiter: z.string().min(1).default(";"),
        max_step_tokens: z.number().int().positive().default(16),
        temperature: z.number().gt(0).default(1),
        /** An oracle score at least this is a correct outcome (+1), below it a wrong one (-1). */
        correct_score: z.number().default(1),
        /**
         * The paper's self-evaluation: the policy's P(yes) / (P(yes) + P(no)) after `template` (holding
         * {prompt} and {steps}), times `weight`, is added to every step's value. Off by default: a model
         * must have learnt to judge steps for it to mean anything.
         */
        self_eval: z
          .strictObject({
            weight: z.number().positive(),
            template: z.string().default("{prompt}{steps}\nright?"),
            yes: z.string().min(1).default("y"),
            no: z.string().min(1).default("n"),
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
        beta: z.number().positive().default(0.1),
        tau: z.number().min(0).optional(),
        /** SPO's self-supervised preference-degree loss, added with `weight` (src/core/spo.ts). */
        spo: z
          .strictObject({
            weight: z.number().positive().default(0.1),
            degrees: z.number().int().min(2).max(5).default(3),
            unit: z.enum(["rake", "letters"]).default("rake"),
            samples_per_response: z.number().int().positive().default(1),
          })
          .refine((o) => o.samples_per_response <= o.degrees, {
            message: "samples_per_response must not exceed degrees",
            path: ["samples_per_response"],
          })
          .optional(),
      })
      .refine((o) => o.name !== "inpo" || (o.tau !== undefined && o.tau <= o.beta), {
        message: "inpo needs tau, with 0 <= tau <= beta",
        path: ["tau"],
      })
      .prefault({}),
    train: z
      .strictObject({
        ...optimizerFields,
        lr: z.number().positive().default(5e-5),
        /** Multiplies the learning rate at every iteration after the first (the paper lowers it). */
        lr_decay: z.number().positive().max(1).default(1),
      })
      .prefault({}),
    eval: z
      .strictObject({
        samples_per_prompt: z.number().int().positive().default(4),
        temperature: z.number().min(0).default(1),
        top_p: z.number().gt(0).max(1).default(1),
      })
      .prefault({}),
  })
  .refine((c) => c.search === undefined || (!c.pairs.offline && c.pairs.reward_augmented === undefined), {
    message:
      "search builds its own step-level pairs: it cannot be combined with pairs.offline or pairs.reward_augmented",
    path: ["search"],
  });

function checkedTemplate(template: string): boolean {
  return template.includes("{goal}") && template.includes("{prompt}");
}

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;

/** Validates a config object; `where` (a file name) prefixes the message. */
export function parseRunConfig(value: unknown, where: string): RunConfig {
  const parsed = runConfigSchema.safeParse(value);
  if (!parsed.success) throw new DnoError(`${where}: ${describeZodError(parsed.error)}`);
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
  if (out.oracle.kind === "programmatic") out.oracle.module = at(out.oracle.module);
  if (out.task_metrics) out.task_metrics = at(out.task_metrics);
  if ("cache" in out.oracle && out.oracle.cache) out.oracle.cache = at(out.oracle.cache);
  if (out.oracle.kind === "llm-judge") {
    const t = out.oracle.templates;
    if (t.pointwise) t.pointwise = at(t.pointwise);
    if (t.pairwise) t.pairwise = at(t.pairwise);
  }
  return out;
}
