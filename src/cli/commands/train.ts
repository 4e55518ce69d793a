import { basename, dirname, resolve } from "node:path";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { OBJECTIVE_NAMES } from "../../core/objectives.js";
import { loadPolicy, policyWeightsSha256, savePolicy } from "../../pipeline/policy.js";
import { readPreferenceFile } from "../../pipeline/preference-file.js";
import { writeDirAt, writeJsonlAt } from "../../pipeline/stages.js";
import { type TrainArgs, trainArgsSchema, trainOnPreferences } from "../../pipeline/trainer.js";
import { DnoError } from "../../util/errors.js";
import { readJsonFile } from "../../util/files.js";
import { describeZodError } from "../../util/zod.js";
import { intFlag, MAX_SEED, numberFlag } from "../flags.js";

interface TrainFlags {
  model: string;
  pairs: string;
  out: string;
  args?: string;
  refModel?: string;
  log?: string;
  objective?: string;
  beta?: number;
  tau?: number;
  alpha?: number;
  lr?: number;
  epochs?: number;
  batchSize?: number;
  warmupSteps?: number;
  weightDecay?: number;
  gradClip?: number;
  seed?: number;
  recompute?: boolean;
}

/** What a run uses when its config says nothing (src/pipeline/config.ts). */
const DEFAULT_ARGS: TrainArgs = {
  objective: "dno-prct",
  beta: 0.1,
  lr: 5e-5,
  batch_size: 16,
  epochs: 1,
  warmup_steps: 0,
  weight_decay: 0,
  grad_clip: 1,
  seed: 0,
  precision: "fp32",
};

/** train-args.json (when given), then the flags given on the command line. */
function resolveArgs(flags: TrainFlags): TrainArgs {
  const fromFile = flags.args ? readJsonFile(flags.args) : {};
  const given: Partial<TrainArgs> = {
    ...(flags.objective !== undefined && { objective: flags.objective }),
    ...(flags.beta !== undefined && { beta: flags.beta }),
    ...(flags.tau !== undefined && { tau: flags.tau }),
    ...(flags.alpha !== undefined && { alpha: flags.alpha }),
    ...(flags.lr !== undefined && { lr: flags.lr }),
    ...(flags.epochs !== undefined && { epochs: flags.epochs }),
    ...(flags.batchSize !== undefined && { batch_size: flags.batchSize }),
    ...(flags.warmupSteps !== undefined && { warmup_steps: flags.warmupSteps }),
    ...(flags.weightDecay !== undefined && { weight_decay: flags.weightDecay }),
    ...(flags.gradClip !== undefined && { grad_clip: flags.gradClip }),
    ...(flags.seed !== undefined && { seed: flags.seed }),
    ...(flags.recompute && { recompute: true }),
  };
  const parsed = trainArgsSchema.safeParse({ ...DEFAULT_ARGS, ...(fromFile as object), ...given });
  if (!parsed.success) throw new DnoError(`${flags.args ?? "dno train"}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

async function runTrain(flags: TrainFlags): Promise<void> {
  const args = resolveArgs(flags);
  const policy = loadPolicy(flags.model);
  const rows = readPreferenceFile(flags.pairs, policy, {
    reference: () => (flags.refModel ? loadPolicy(flags.refModel) : loadPolicy(flags.model)),
  });
  const bar = new SingleBar({
    format: "training [{bar}] {value}/{total} steps | {eta_formatted} left",
    stream: process.stderr,
    hideCursor: true,
  });
  const started = performance.now();
  let log: ReturnType<typeof trainOnPreferences>;
  try {
    log = trainOnPreferences(policy, rows, args, flags.pairs, (done, total) => {
      if (done === 1) bar.start(total, 0);
      bar.update(done);
    });
  } finally {
    bar.stop();
  }
  const out = resolve(flags.out);
  // With LoRA (train-args.json's lora): an adapter checkpoint naming --model as its base.
  await writeDirAt(dirname(out), basename(out), (dir) => savePolicy(policy, dir, resolve(flags.model)));
  if (flags.log) writeJsonlAt(dirname(resolve(flags.log)), basename(flags.log), log);
  const last = log[log.length - 1]!;
  process.stderr.write(
    `trained ${log.length} steps on ${rows.length} pairs (${args.objective}, beta ${args.beta}) in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s, last loss ${last.loss.toFixed(4)} -> ${flags.out}\n` +
      `weights sha256 ${policyWeightsSha256(policy)}\n`,
  );
}

export function register(program: Command): void {
  program
    .command("train")
    .description(
      "train a policy on a preference file (TRL format: prompt/chosen/rejected, plain or conversational) " +
        "with any objective; the reference implementation of the external-trainer contract",
    )
    .requiredOption(
      "--model <dir>",
      "the policy to train (Hugging Face directory); also the default reference",
    )
    .requiredOption(
      "--pairs <file>",
      "JSONL {prompt, chosen, rejected, prompt_ids?, chosen_ids?, rejected_ids?, ref_chosen_logps?, ref_rejected_logps?, ...}",
    )
    .requiredOption("--out <dir>", "where the trained checkpoint goes (replaced atomically)")
    .option("--args <file>", "train-args.json (a run's); flags given here override it")
    .option("--ref-model <dir>", "reference policy for rows without reference log-probs (default: --model)")
    .option("--log <file>", "write the per-step loss and margin as JSONL")
    .option("--objective <name>", `one of ${OBJECTIVE_NAMES.join(", ")} (default dno-prct)`)
    .option(
      "--beta <x>",
      "the objective's beta (default 0.1)",
      numberFlag("--beta", 0, 1e6, { exclusiveMin: true }),
    )
    .option("--tau <x>", "INPO's tau", numberFlag("--tau", 0, 1e6))
    .option(
      "--lr <x>",
      "peak learning rate (default 5e-5)",
      numberFlag("--lr", 0, 10, { exclusiveMin: true }),
    )
    .option(
      "--epochs <x>",
      "passes over the pairs (default 1)",
      numberFlag("--epochs", 0, 10000, { exclusiveMin: true }),
    )
    .option("--batch-size <n>", "pairs per step (default 16)", intFlag("--batch-size", 1, 1 << 20))
    .option("--warmup-steps <n>", "linear warmup steps (default 0)", intFlag("--warmup-steps", 0, 1e9))
    .option("--weight-decay <x>", "AdamW weight decay (default 0)", numberFlag("--weight-decay", 0, 10))
    .option(
      "--grad-clip <x>",
      "gradient norm clip (default 1)",
      numberFlag("--grad-clip", 0, 1e6, { exclusiveMin: true }),
    )
    .option("--seed <n>", "shuffle seed (default 0)", intFlag("--seed", 0, MAX_SEED))
    .option(
      "--recompute",
      "activation recomputation: each layer's activations are recomputed before its backward (less memory, more compute)",
    )
    .action(async (flags: TrainFlags) => runTrain(flags));
}
