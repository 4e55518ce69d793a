/**
 * `dno run`: T iterations of DNO-Prct (Algorithm 2, ../../docs/ARCHITECTURE.md), each a chain of atomic,
 * resumable stages over the run directory:
 *
 *   prepare                      data/ (inputs copied in, prompts split into T partitions)
 *   init, sft                    checkpoints/pi_1 (pi_ref: the initial policy, after SFT if configured)
 *   eval/0                       iterations/0/eval.jsonl (pi_1 on the held-out prompts)
 *   per iteration t = 1..T:
 *     the pair source's stages   iterations/t/pairs.jsonl: the iteration's training pairs (pair-source.ts;
 *                                by default t/sample, t/annotate, t/pairs in instance-pairs.ts)
 *     t/reference                iterations/t/pairs.trl.jsonl: text, token ids, reference log-probs
 *     t/train                    checkpoints/pi_{t+1}, iterations/t/train-args.json, train-log.jsonl
 *     t/eval                     iterations/t/eval.jsonl: pi_{t+1} vs pi_t, pi_1 and the teacher (evaluation.ts)
 *   select                       the best iterate on validation prompts
 *
 * Pairs come from the run's `PairSource` (pair-source.ts), sampling goes through the configured
 * `Sampler` (sampler.ts), training through the `Trainer` (trainer.ts); the last two default to the
 * native engine.
 * metrics.jsonl and the report are derived from the stages' results and rewritten as they finish.
 * Every random choice draws from Rng.derive(seed, stage, t), so a resumed run ends with the same
 * weights as an uninterrupted one.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { getObjective } from "../core/objectives.js";
import type { PairComposition } from "../core/pairs.js";
import { deriveSeed, Rng } from "../core/rng.js";
import { engine } from "../engine/index.js";
import { setDefaultPrecision } from "../model/precision.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readJsonl, toJsonl } from "../util/jsonl.js";
import { type BenchmarkResult, benchmarkOutputs, benchmarkStage, writeBenchmarks } from "./benchmark.js";
import type { RunConfig } from "./config.js";
import { type PromptRow, partitionCount, promptRowSchema, readRunInputs } from "./data.js";
import { type EvaluationContext, evaluate, evaluateMixture, selectBest } from "./evaluation.js";
import { highestGoalPrompt } from "./goals.js";
import { type GuardInput, type GuardWarning, guardContext, guardWarnings, readGuardInput } from "./guards.js";
import { openRunOracle, type RunOracle } from "./oracle.js";
import { createPairSource } from "./pair-source.js";
import { iterDir, MIXTURE_DIR, policyPath } from "./paths.js";
import {
  type BatchLoss,
  encodeExample,
  initPolicy,
  loadPolicy,
  type Policy,
  policyShape,
  policyWeightsSha256,
  responseTokenCount,
  savePolicy,
  type TextExample,
  tokenSequenceLogprobs,
  trainSteps,
} from "./policy.js";
import {
  type EvalResult,
  type MixtureEvalResult,
  type PairRow,
  pairRowSchema,
  type TrlRow,
} from "./records.js";
import { openRunDir } from "./run-dir.js";
import { createSampler } from "./sampler.js";
import {
  keptBatches,
  type ProgressFn,
  runStage,
  type StageEvents,
  type StageFn,
  writeDirAt,
  writeJsonAt,
  writeJsonlAt,
} from "./stages.js";
import { loadTaskMetrics } from "./task-metrics.js";
import { createTrainer, type Trainer, trainArgsOf } from "./trainer.js";

export type { ProgressFn };

export interface RunOptions {
  config: RunConfig;
  progress?: ProgressFn;
  events?: StageEvents;
  /** Called when a collapse guard trips (src/pipeline/guards.ts). */
  warn?: (warning: GuardWarning) => void;
}

export interface RunResult {
  runDir: string;
  evals: EvalResult[];
  pairs: { t: number; composition: PairComposition }[];
  stageSeconds: Record<string, number>;
  /**
   * The resulting iterate, 1-based (pi_best): chosen on validation prompts, else the last one, or the
   * last before a collapse when `guards.stop_on_collapse` stopped the run.
   */
  best: number;
  chosenBy: "validation" | "last";
  /** Every collapse-guard warning, by iteration. */
  warnings: GuardWarning[];
  /** The iteration after which stop_on_collapse ended the run; null when it ran to the end. */
  stoppedAfter: number | null;
  /** The mixture of pi_1..pi_T on the held-out prompts (config eval.mixture), else null. */
  mixture: MixtureEvalResult | null;
  finalWeightsSha256: string;
  oracleJudgments: number;
  /** What building each iteration's training data cost: policy tokens sampled, oracle calls. */
  spent: { t: number; tokens: number; judgments: number }[];
}

export { policyPath };

/** Sequences scored between two saves of a reference stage's progress (a multiple of policy.ts's chunk). */
const LOGPROBS_PER_BATCH = 256;
/** Training progress toward a checkpoint, kept beside it until the checkpoint is written. */
const resumeFileOf = (checkpoint: string): string => `${checkpoint}.progress.safetensors`;

/** Runs (or resumes) the whole pipeline in the config's run directory. */
export async function runPipeline(options: RunOptions): Promise<RunResult> {
  const { config } = options;
  if (config.precision) setDefaultPrecision(config.precision, "config");
  // Results do not depend on the pool's size (GEMMs are bit-identical for any thread count).
  if (config.threads !== undefined) engine().setNumThreads(config.threads);
  const runDir = config.run_dir;
  const progress = options.progress ?? (() => {});
  const state = openRunDir(config, () => readRunInputs(config, policyShape(config.model)));
  let oracle: RunOracle | undefined;
  try {
    const stage = <T>(name: string, outputs: readonly string[], work: () => Promise<T> | T) =>
      runStage(state, name, outputs, work, options.events);

    const prep = await stage("prepare", ["data"], () => prepare(config, runDir));
    oracle = await openRunOracle(config.oracle, runDir);
    const taskMetrics = config.task_metrics ? await loadTaskMetrics(config.task_metrics) : undefined;

    await preparePolicy(config, runDir, stage, progress);
    const evalRows = readJsonl(join(runDir, "data/eval.jsonl"), promptRowSchema);
    const validationRows = prep.validation
      ? readJsonl(join(runDir, "data/validation.jsonl"), promptRowSchema)
      : [];
    const partitions = JSON.parse(
      readFileSync(join(runDir, "data/partitions.json"), "utf8"),
    ) as PromptRow[][];
    const ctx: IterationContext = {
      config,
      runDir,
      progress,
      oracle,
      taskMetrics,
      evalRows,
      validationRows,
      sampler: createSampler(config.sampler, { runDir, seed: config.seed, env: process.env }),
      trainer: createTrainer(config.trainer),
    };
    const pairSource = createPairSource({ ...ctx, stage });

    const evals: EvalResult[] = [];
    const evalOutputs = (t: number) => [
      `${iterDir(t)}/eval.jsonl`,
      ...(prep.validation ? [`${iterDir(t)}/validation.json`] : []),
    ];
    evals.push(await stage("eval/0", evalOutputs(0), () => evaluate(ctx, 0)));
    const guardInputs: GuardInput[] = [readGuardInput(runDir, config, evals[0]!)];
    const warnings: GuardWarning[] = [];
    writeMetrics(runDir, evals, warnings);
    const benchmarks: BenchmarkResult[] = [];
    const benchmark = async (t: number) => {
      if (!config.eval.benchmark) return;
      const input = {
        benchmark: config.eval.benchmark,
        oracle: config.oracle,
        runDir,
        seed: config.seed,
        maxNewTokens: config.sampling.max_new_tokens,
        topP: config.eval.top_p,
        progress,
      };
      benchmarks.push(await stage(`${t}/benchmark`, benchmarkOutputs(t), () => benchmarkStage(input, t)));
      writeBenchmarks(runDir, benchmarks);
    };
    await benchmark(0);
    const pairs: RunResult["pairs"] = [];
    let stoppedAfter: number | null = null;
    const spent: RunResult["spent"] = [];
    for (let t = 1; t <= config.iterations; t++) {
      const dir = iterDir(t);
      const { composition, spent: cost } = await pairSource.pairs(t, partitions[t - 1]!);
      if (cost) spent.push({ t, ...cost });
      pairs.push({ t, composition });
      await stage(`${t}/reference`, [`${dir}/pairs.trl.jsonl`], () => referenceStage(ctx, t));
      const trainOutputs = [policyPath(t + 1), `${dir}/train-args.json`, `${dir}/train-log.jsonl`];
      await stage(`${t}/train`, trainOutputs, () => trainStage(ctx, t));
      evals.push(await stage(`${t}/eval`, evalOutputs(t), () => evaluate(ctx, t)));
      guardInputs.push(readGuardInput(runDir, config, evals[t]!, composition));
      const tripped = guardWarnings(guardInputs, guardContext(config));
      warnings.push(...tripped);
      for (const w of tripped) options.warn?.(w);
      writeMetrics(runDir, evals, warnings);
      await benchmark(t);
      if (tripped.length > 0 && config.guards.stop_on_collapse) {
        stoppedAfter = t;
        break;
      }
    }
    // A collapsed iterate is never the result: choose among pi_1 .. pi_t.
    const candidates = stoppedAfter === null ? evals : evals.slice(0, -1);
    const best = await stage("select", [], () => selectBest(candidates));
    // The mixture of pi_1..pi_T needs every iterate; a run stopped by a guard has no mixture.
    const mixture =
      config.eval.mixture && stoppedAfter === null
        ? await stage("mixture", [`${MIXTURE_DIR}/eval.jsonl`], () => evaluateMixture(ctx))
        : null;
    const stageSeconds: Record<string, number> = {};
    for (const r of state.all()) stageSeconds[r.name] = r.seconds;
    const lastT = stoppedAfter ?? config.iterations;
    const last = state.get<{ weightsSha256: string }>(`${lastT}/train`)!.result;
    return {
      runDir,
      evals,
      pairs,
      stageSeconds,
      best,
      chosenBy: ctx.validationRows.length > 0 ? "validation" : "last",
      warnings,
      stoppedAfter,
      mixture,
      finalWeightsSha256: last.weightsSha256,
      oracleJudgments: oracle.paidJudgments(),
      spent,
    };
  } finally {
    oracle?.close();
    state.close();
  }
}

interface IterationContext extends EvaluationContext {
  trainer: Trainer;
}

async function prepare(
  config: RunConfig,
  runDir: string,
): Promise<{ partitionSizes: number[]; validation: boolean }> {
  const inputs = readRunInputs(config, policyShape(config.model));
  const { prompts, validation } = inputs;
  const T = partitionCount(config);
  const per = config.data.prompts_per_iteration ?? Math.floor(prompts.length / T);
  const shuffled = Rng.derive(config.seed, "partition").shuffle([...prompts]);
  const partitions = Array.from({ length: T }, (_, i) => shuffled.slice(i * per, (i + 1) * per));
  await writeDirAt(runDir, "data", (dir) => {
    writeFileAtomic(join(dir, "partitions.json"), JSON.stringify(partitions));
    writeJsonlAt(dir, "eval.jsonl", inputs.eval);
    if (validation) writeJsonlAt(dir, "validation.jsonl", validation);
    if (inputs.sft) writeJsonlAt(dir, "sft.jsonl", inputs.sft);
  });
  return { partitionSizes: partitions.map((p) => p.length), validation: validation !== undefined };
}

/** pi_1: the model as given, or a fresh one; then SFT on gold answers when configured. */
async function preparePolicy(
  config: RunConfig,
  runDir: string,
  stage: StageFn,
  progress: ProgressFn,
): Promise<void> {
  const start = config.model.path ?? join(runDir, "checkpoints/init");
  if (config.model.from_scratch) {
    const arch = config.model.from_scratch;
    await stage("init", ["checkpoints/init"], async () => {
      const policy = initPolicy(arch, deriveSeed(config.seed, "init"));
      await writeDirAt(runDir, "checkpoints/init", (dir) => savePolicy(policy, dir));
      return { weightsSha256: policyWeightsSha256(policy) };
    });
  }
  await stage("sft", [policyPath(1), "iterations/sft-log.jsonl"], async () => {
    const policy = loadPolicy(start);
    const log: unknown[] = [];
    if (config.sft) {
      const rows = readJsonl(join(runDir, "data/sft.jsonl"), promptRowSchema);
      const plain: TextExample[] = rows.map((r, i) => {
        if (r.gold === undefined)
          throw new DnoError(`${config.sft!.data}: line ${i + 1}: SFT needs a "gold" answer`);
        return { prompt: r.prompt, response: r.gold };
      });
      // Reward-augmented DPO: the gold answers again, asked for at the highest goal.
      const atGoal = highestGoalPrompt(config);
      const examples = config.sft.goal_conditioned
        ? [...plain, ...rows.map((r) => ({ prompt: atGoal(r.prompt), response: r.gold! }))]
        : plain;
      log.push(
        ...trainSteps(policy, examples, {
          ...config.sft,
          recompute: config.model.recompute,
          seed: deriveSeed(config.seed, "sft"),
          stage: "sft",
          resume: {
            file: join(runDir, resumeFileOf(policyPath(1))),
            everySeconds: config.sft.checkpoint_seconds,
          },
          examplesOf: (batch) => batch.map((e) => encodeExample(policy, e)),
          lossOf: (batch) => sftLoss(policy, batch),
          progress: (done, total) => progress("sft", done, total),
        }),
      );
    }
    await writeDirAt(runDir, policyPath(1), (dir) => savePolicy(policy, dir));
    writeJsonlAt(runDir, "iterations/sft-log.jsonl", log);
    rmSync(join(runDir, resumeFileOf(policyPath(1))), { force: true });
    return { weightsSha256: policyWeightsSha256(policy), steps: log.length };
  });
}

/** Reference log-probs, once per iteration: pi_t (or the fixed pi_1 for DPO/IPO), and pi_1 as INPO's anchor. */
async function referenceStage(ctx: IterationContext, t: number): Promise<{ pairs: number }> {
  const { config, runDir } = ctx;
  const objective = getObjective(config.objective.name);
  const rows = readJsonl(join(runDir, iterDir(t), "pairs.jsonl"), pairRowSchema);
  const explores = objective.needs.includes("explore");
  const items = [
    ...rows.map((r) => ({ prompt: r.promptIds, response: r.chosenIds })),
    ...rows.map((r) => ({ prompt: r.promptIds, response: r.rejectedIds })),
    ...(explores ? rows.map((r) => ({ prompt: r.promptIds, response: exploreIdsOf(r, t) })) : []),
  ];
  const refT = objective.reference === "fixed" ? 1 : t;
  const kept = `${iterDir(t)}/reference.partial`;
  const logprobsUnder = async (k: number, label: string) => {
    const policy = loadPolicy(join(runDir, policyPath(k)));
    const values = await keptBatches(
      runDir,
      `${kept}/${label}`,
      items.length,
      LOGPROBS_PER_BATCH,
      async (start, end) =>
        Array.from(
          tokenSequenceLogprobs(policy, items.slice(start, end), (done) =>
            ctx.progress(`${t}/reference ${label}`, start + done, items.length),
          ),
        ),
    );
    return Float64Array.from(values);
  };
  const ref = await logprobsUnder(refT, "pi_ref");
  const anchor = objective.needs.includes("anchor") ? await logprobsUnder(1, "anchor") : undefined;
  const n = rows.length;
  const trl = rows.map(
    (r, i): TrlRow => ({
      prompt: r.prompt,
      ...(r.system !== undefined && { system: r.system }),
      chosen: r.chosenText,
      rejected: r.rejectedText,
      prompt_ids: r.promptIds,
      chosen_ids: r.chosenIds,
      rejected_ids: r.rejectedIds,
      ref_chosen_logps: ref[i]!,
      ref_rejected_logps: ref[n + i]!,
      ...(anchor && { anchor_chosen_logps: anchor[i]!, anchor_rejected_logps: anchor[n + i]! }),
      ...(r.target !== null && { target: r.target }),
      ...(r.chosenWinRate !== null && { chosen_win_rate: r.chosenWinRate }),
      ...(r.rejectedWinRate !== null && { rejected_win_rate: r.rejectedWinRate }),
      ...(explores && { explore_ids: exploreIdsOf(r, t), ref_explore_logps: ref[2 * n + i]! }),
    }),
  );
  writeJsonlAt(runDir, `${iterDir(t)}/pairs.trl.jsonl`, trl);
  rmSync(join(runDir, kept), { recursive: true, force: true });
  return { pairs: n };
}

/** SELM's y_e of a pair; a pair without one (no student sample for its prompt) cannot train SELM. */
function exploreIdsOf(row: PairRow, t: number): number[] {
  if (row.exploreIds === undefined) {
    throw new DnoError(
      `iteration ${t}: pair ${row.promptId} has no sample of pi_t for SELM's optimism term; sample with samples_per_prompt >= 1`,
    );
  }
  return row.exploreIds;
}

/** pi_{t+1} from pi_t and the contract files, by the configured trainer. */
async function trainStage(
  ctx: IterationContext,
  t: number,
): Promise<{ weightsSha256: string; steps: number }> {
  const { config, runDir } = ctx;
  const dir = join(runDir, iterDir(t));
  writeJsonAt(runDir, `${iterDir(t)}/train-args.json`, trainArgsOf(config, t));
  const resumeFile = join(runDir, resumeFileOf(policyPath(t + 1)));
  let result: Awaited<ReturnType<Trainer["train"]>> | undefined;
  await writeDirAt(runDir, policyPath(t + 1), async (outDir) => {
    result = await ctx.trainer.train({
      policyDir: join(runDir, policyPath(t)),
      pairsFile: join(dir, "pairs.trl.jsonl"),
      argsFile: join(dir, "train-args.json"),
      args: trainArgsOf(config, t),
      outDir,
      logFile: join(dir, "train-output.log"),
      stage: `${t}/train`,
      resume: { file: resumeFile, everySeconds: config.train.checkpoint_seconds },
      progress: (done, total) => ctx.progress(`${t}/train`, done, total),
    });
  });
  writeJsonlAt(runDir, `${iterDir(t)}/train-log.jsonl`, result!.log);
  rmSync(resumeFile, { force: true });
  return { weightsSha256: result!.weightsSha256, steps: result!.log.length };
}

/** Token-mean negative log-likelihood of the gold responses (SFT). */
function sftLoss(policy: Policy, batch: readonly TextExample[]): BatchLoss {
  const tokens = batch.reduce((s, e) => s + responseTokenCount(policy, e), 0);
  const loss = (lp: Float64Array) => {
    let sum = 0;
    const grad = new Float64Array(lp.length).fill(-1 / tokens);
    for (let i = 0; i < lp.length; i++) sum -= lp[i]! / tokens;
    return { loss: sum, grad, margin: null };
  };
  return Object.assign(loss, { groupOf: (example: number) => example });
}

/**
 * metrics.jsonl: one line per evaluated policy, with the collapse guards it tripped; derived from the
 * finished evaluations, and left alone when it already says the same.
 */
function writeMetrics(runDir: string, evals: readonly EvalResult[], warnings: readonly GuardWarning[]): void {
  const rows = evals.map((e) => ({
    ...e,
    guards: warnings.filter((w) => w.t === e.t).map(({ guard, message }) => ({ guard, message })),
  }));
  const file = join(runDir, "metrics.jsonl");
  if (existsSync(file) && readFileSync(file, "utf8") === toJsonl(rows)) return;
  writeJsonlAt(runDir, "metrics.jsonl", rows);
}
