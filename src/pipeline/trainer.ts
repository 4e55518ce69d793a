/**
 * Who turns pi_t and an iteration's pairs into pi_{t+1}. The train stage hands a `Trainer` the
 * contract files (pairs.trl.jsonl with token ids and reference log-probs, train-args.json) and an
 * empty directory to fill with the new checkpoint. The native engine is the default; `command`
 * (trainer-command.ts) runs any program that honours the contract (`dno train`, TRL). A new way of
 * training is one more implementation and one more entry in `TRAINERS`, not a branch in run.ts.
 */
import { z } from "zod";
import { getObjective, OBJECTIVE_NAMES, sequenceLossFn } from "../core/objectives.js";
import { deriveSeed } from "../core/rng.js";
import { loraOptionsSchema } from "../model/lora.js";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";
import type { RunConfig } from "./config.js";
import {
  loadPolicy,
  type Policy,
  policyWeightsSha256,
  savePolicy,
  startLoraAdapter,
  type TrainResume,
  trainSteps,
} from "./policy.js";
import { type TrainLogRow, type TrlRow, trlRowSchema } from "./records.js";
import { degreeTask, spoOptionsSchema } from "./spo.js";
import { commandTrainer } from "./trainer-command.js";

/** train-args.json: everything a trainer needs besides the pairs and pi_t. */
export const trainArgsSchema = z.strictObject({
  objective: z.enum(OBJECTIVE_NAMES as [string, ...string[]]),
  beta: z.number().positive(),
  tau: z.number().min(0).optional(),
  /** SELM's optimism weight. */
  alpha: z.number().min(0).optional(),
  /** This iteration's peak learning rate (lr_decay already applied); linear warmup, then linear decay to 0. */
  lr: z.number().positive(),
  batch_size: z.number().int().positive(),
  epochs: z.number().positive(),
  warmup_steps: z.number().int().min(0),
  weight_decay: z.number().min(0),
  grad_clip: z.number().positive(),
  seed: z.number().int().min(0),
  /** The precision the engine trains in; external trainers map it to theirs (TRL: bf16). */
  precision: z.enum(["fp32", "bf16"]),
  /** Activation recomputation (the run's model.recompute); TRL: gradient_checkpointing. */
  recompute: z.boolean().optional(),
  /**
   * Train a LoRA adapter on pi_t (base frozen) instead of all weights: `train.lora` (r, alpha,
   * target_modules, rslora: PEFT's names) and the seed of the adapter's initialisation.
   */
  lora: loraOptionsSchema.extend({ init_seed: z.number().int().min(0) }).optional(),
  /** SPO's preference-degree loss, added to the objective's (src/pipeline/spo.ts); engine trainer only. */
  spo: spoOptionsSchema.optional(),
});
export type TrainArgs = z.infer<typeof trainArgsSchema>;

export interface TrainJob {
  /** pi_t, a Hugging Face checkpoint directory. */
  policyDir: string;
  /** pairs.trl.jsonl of this iteration. */
  pairsFile: string;
  /** train-args.json (its content is `args`). */
  argsFile: string;
  args: TrainArgs;
  /** An empty directory: the trainer writes pi_{t+1} here. */
  outDir: string;
  /** A file for the trainer's own output (a command's stdout and stderr). */
  logFile: string;
  /** The stage, for messages (a non-finite loss names it and the step). */
  stage?: string;
  /** In-process training saves its progress here and resumes from it (commands keep their own). */
  resume?: TrainResume;
  progress?: (done: number, total: number) => void;
}

export interface TrainResult {
  /** SHA-256 of pi_{t+1}'s parameters as the engine loads them (`CausalLM.weightsSha256`). */
  weightsSha256: string;
  steps: number;
  /** Per-step loss and margin, when the trainer reports them. */
  log: TrainLogRow[];
}

export interface Trainer {
  train(job: TrainJob): Promise<TrainResult>;
}

/** In-process training on the native engine: the default. */
export function engineTrainer(): Trainer {
  return {
    async train(job) {
      const policy = loadPolicy(job.policyDir);
      const rows = readJsonl(job.pairsFile, trlRowSchema);
      const log = trainOnPreferences(policy, rows, job.args, job.pairsFile, job.progress, {
        ...(job.stage !== undefined && { stage: job.stage }),
        ...(job.resume && { resume: job.resume }),
      });
      // With LoRA: an adapter checkpoint over pi_t; the policy in memory is then pi_t with it merged.
      savePolicy(policy, job.outDir, job.policyDir);
      return { weightsSha256: policyWeightsSha256(policy), steps: log.length, log };
    },
  };
}

/**
 * AdamW on the objective over the rows' token ids, against their reference log-probs: the whole of
 * what a trainer must do with the contract files (`dno train` runs exactly this). With `args.lora`,
 * only a fresh adapter on the policy is trained.
 */
export function trainOnPreferences(
  policy: Policy,
  rows: readonly TrlRow[],
  args: TrainArgs,
  source: string,
  progress?: (done: number, total: number) => void,
  run: { stage?: string; resume?: TrainResume } = {},
): TrainLogRow[] {
  const objective = getObjective(args.objective);
  if (rows.length === 0) throw new DnoError(`${source}: no preference pairs to train on`);
  const unanchored = rows.findIndex(
    (r) => r.anchor_chosen_logps === undefined || r.anchor_rejected_logps === undefined,
  );
  if (objective.needs.includes("anchor") && unanchored >= 0) {
    throw new DnoError(
      `${source}: line ${unanchored + 1}: objective ${objective.name} needs anchor_chosen_logps and anchor_rejected_logps`,
    );
  }
  if (args.lora) {
    const { init_seed, ...options } = args.lora;
    startLoraAdapter(policy, options, init_seed);
  }
  const explores = objective.needs.includes("explore");
  const unexplored = rows.findIndex((r) => r.explore_ids === undefined || r.ref_explore_logps === undefined);
  if (explores && unexplored >= 0) {
    throw new DnoError(
      `${source}: line ${unexplored + 1}: objective ${objective.name} needs explore_ids and ref_explore_logps`,
    );
  }
  const { beta, tau, alpha } = args;
  const degrees = args.spo && degreeTask(args.spo, args.seed, policy);
  const units = rows.map((row, i) => ({ row, degree: degrees?.unitOf(row, i) }));
  return trainSteps(policy, units, {
    ...args,
    ...run,
    // The layout sequenceLossFn expects: every chosen response, then every rejected one (then y_e),
    // then SPO's label sequences.
    examplesOf: (units) => {
      const batch = units.map((u) => u.row);
      return [
        ...batch.map((r) => ({ prompt: r.prompt_ids, response: r.chosen_ids })),
        ...batch.map((r) => ({ prompt: r.prompt_ids, response: r.rejected_ids })),
        ...(explores ? batch.map((r) => ({ prompt: r.prompt_ids, response: r.explore_ids! })) : []),
        ...(degrees ? degrees.examples(units.map((u) => u.degree!)) : []),
      ];
    },
    lossOf: (units) => {
      const batch = units.map((u) => u.row);
      const f64 = (f: (r: TrlRow) => number) => Float64Array.from(batch, f);
      const refChosen = f64((r) => r.ref_chosen_logps);
      const refRejected = f64((r) => r.ref_rejected_logps);
      const anchored = objective.needs.includes("anchor");
      const lossFn = sequenceLossFn(
        objective,
        {
          refChosen,
          refRejected,
          target: f64((r) => r.target ?? 1),
          winRateChosen: f64((r) => r.chosen_win_rate ?? 0.5),
          winRateRejected: f64((r) => r.rejected_win_rate ?? 0.5),
          ...(anchored && {
            anchorChosen: f64((r) => r.anchor_chosen_logps!),
            anchorRejected: f64((r) => r.anchor_rejected_logps!),
          }),
          ...(explores && { refExplore: f64((r) => r.ref_explore_logps!) }),
        },
        { beta, ...(tau !== undefined && { tau }), ...(alpha !== undefined && { alpha }) },
      );
      const n = batch.length;
      const total = degrees
        ? degrees.loss(
            lossFn,
            (explores ? 3 : 2) * n,
            units.map((u) => u.degree!),
          )
        : lossFn;
      const batchLoss = (lp: Float64Array) => {
        const { loss, grad } = total(lp);
        let margin = 0;
        for (let i = 0; i < n; i++)
          margin += beta * (lp[i]! - refChosen[i]! - (lp[n + i]! - refRejected[i]!));
        return { loss, grad, margin: margin / n };
      };
      // SPO's label sequences are not grouped by pair (spo.ts): its batches keep the two-pass pieces.
      return degrees ? batchLoss : Object.assign(batchLoss, { groupOf: lossFn.groupOf });
    },
    ...(progress && { progress }),
  });
}

/** The train-args.json of iteration t. */
export function trainArgsOf(config: RunConfig, t: number): TrainArgs {
  const { train, objective } = config;
  return {
    objective: objective.name,
    beta: objective.beta,
    ...(objective.tau !== undefined && { tau: objective.tau }),
    ...(objective.alpha !== undefined && { alpha: objective.alpha }),
    lr: train.lr * train.lr_decay ** (t - 1),
    batch_size: train.batch_size,
    epochs: train.epochs,
    warmup_steps: train.warmup_steps,
    weight_decay: train.weight_decay,
    grad_clip: train.grad_clip,
    seed: deriveSeed(config.seed, "train", t),
    precision: "fp32",
    ...(config.model.recompute && { recompute: true }),
    ...(train.lora && { lora: { ...train.lora, init_seed: deriveSeed(config.seed, "lora", t) } }),
    ...(objective.spo && { spo: objective.spo }),
  };
}

export type TrainerConfig = RunConfig["trainer"];

const TRAINERS: {
  [K in TrainerConfig["kind"]]: (config: Extract<TrainerConfig, { kind: K }>) => Trainer;
} = {
  engine: () => engineTrainer(),
  command: (config) => commandTrainer(config),
};

export function createTrainer(config: TrainerConfig): Trainer {
  const make = TRAINERS[config.kind] as (c: TrainerConfig) => Trainer;
  return make(config);
}
