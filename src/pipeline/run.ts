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
 *     t/eval                     iterations/t/eval.jsonl: pi_{t+1} vs pi_t, pi_1 and the teacher
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
import { type HeadToHead, lengthControlledWinRate } from "../eval/length-controlled.js";
import { charLength, mean, standardErrorOfMean } from "../eval/winrate.js";
import { setDefaultPrecision } from "../model/precision.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readJsonl, toJsonl } from "../util/jsonl.js";
import { type BenchmarkResult, benchmarkOutputs, benchmarkStage, writeBenchmarks } from "./benchmark.js";
import type { RunConfig } from "./config.js";
import { type PromptRow, partitionCount, promptRowSchema, readRunInputs } from "./data.js";
import { generationPrompt, highestGoalPrompt } from "./goals.js";
import { type GuardInput, type GuardWarning, guardContext, guardWarnings, readGuardInput } from "./guards.js";
import { openRunOracle, type RunOracle } from "./oracle.js";
import { createPairSource } from "./pair-source.js";
import { iterDir, MIXTURE_DIR, mixtureIterates, policyPath } from "./paths.js";
import {
  type BatchLoss,
  encodeExample,
  initPolicy,
  loadPolicy,
  mixtureLogprobs,
  type Policy,
  policyShape,
  policyWeightsSha256,
  responseTokenCount,
  type SampledText,
  sampleMixture,
  savePolicy,
  sequenceLogprobs,
  type TextExample,
  tokenSequenceLogprobs,
  trainSteps,
} from "./policy.js";
import {
  type EvalResult,
  type EvalRow,
  evalRowSchema,
  type MixtureEvalResult,
  type PairRow,
  pairRowSchema,
  type TrlRow,
} from "./records.js";
import { openRunDir } from "./run-dir.js";
import {
  createSampler,
  PROMPTS_PER_BATCH,
  type Sampler,
  type SamplerSession,
  withSession,
} from "./sampler.js";
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
import { type LogprobsFn, loadTaskMetrics, type TaskMetricsFn } from "./task-metrics.js";
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

interface IterationContext {
  config: RunConfig;
  runDir: string;
  progress: ProgressFn;
  oracle: RunOracle;
  taskMetrics: TaskMetricsFn | undefined;
  evalRows: PromptRow[];
  validationRows: PromptRow[];
  sampler: Sampler;
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

type SampleFn = (rows: PromptRow[], key: string) => Promise<(SampledText | null)[][]>;

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

/**
 * Evaluates pi_{t+1} (pi_1 for t = 0) on the held-out prompts: M samples per prompt, each judged
 * against the same-index sample of pi_t and of pi_1, and against the teacher's gold answer.
 */
async function evaluate(ctx: IterationContext, t: number): Promise<EvalResult> {
  const stage = t === 0 ? "eval/0" : `${t}/eval`;
  return withSession(ctx.sampler, join(ctx.runDir, policyPath(t + 1)), stage, (session) =>
    evaluateWith(ctx, t, session),
  );
}

async function evaluateWith(ctx: IterationContext, t: number, session: SamplerSession): Promise<EvalResult> {
  const { config, runDir } = ctx;
  const e = config.eval;
  const M = e.samples_per_prompt;
  const promptOf = generationPrompt(config, t + 1);
  const kept = (key: string) => `${iterDir(t)}/${key}.partial`;
  const sample: SampleFn = (rows, key) =>
    keptBatches(runDir, kept(key), rows.length, PROMPTS_PER_BATCH, (start, end) =>
      session.sample(
        rows.slice(start, end).map((r) => promptOf(r.prompt)),
        {
          samplesPerPrompt: M,
          temperature: e.temperature,
          topP: e.top_p,
          topK: 0,
          maxNewTokens: config.sampling.max_new_tokens,
          seed: deriveSeed(config.seed, key, t),
          firstPromptIndex: start,
        },
        (done) => ctx.progress(`${t}/eval ${key}`, start * M + done, rows.length * M),
      ),
    );
  const ours = await sample(ctx.evalRows, "eval");
  const read = (k: number) => readEvalRows(runDir, k);
  const judged = await judgeEvaluation(ctx, {
    label: `${t}/eval`,
    out: `${iterDir(t)}/eval.jsonl`,
    ours: ours.map((xs) => xs.map((s) => s?.text ?? null)),
    prev: t > 0 ? read(t - 1) : undefined,
    initial: t > 0 ? read(0) : undefined,
    logprobs: (items) =>
      sequenceLogprobs(
        loadPolicy(join(runDir, policyPath(t + 1))),
        items.map((x) => ({ ...x, prompt: promptOf(x.prompt) })),
      ),
  });
  let validationWinRate: number | null = null;
  if (ctx.validationRows.length > 0) validationWinRate = await validate(ctx, t, sample);
  for (const key of ["eval", "validation"]) rmSync(join(runDir, kept(key)), { recursive: true, force: true });
  const { metrics, avg_length, ...winRates } = judged;
  return { t, ...winRates, validation_winrate_vs_initial: validationWinRate, avg_length, metrics };
}

const readEvalRows = (runDir: string, t: number) =>
  readJsonl(join(runDir, iterDir(t), "eval.jsonl"), evalRowSchema);

/**
 * Algorithm 1's own output, the uniform mixture of pi_1..pi_T, on the held-out prompts: each sample
 * from a uniformly drawn iterate, judged against the last iterate's same-index sample (vs_prev), pi_1's
 * and the teacher's; task metrics with the mixture's exact log-probs.
 */
async function evaluateMixture(ctx: IterationContext): Promise<MixtureEvalResult> {
  const { config, runDir } = ctx;
  const dirs = mixtureIterates(runDir);
  const e = config.eval;
  const ours = await sampleMixture(
    dirs,
    ctx.evalRows.map((r) => r.prompt),
    {
      samplesPerPrompt: e.samples_per_prompt,
      temperature: e.temperature,
      topP: e.top_p,
      topK: 0,
      maxNewTokens: config.sampling.max_new_tokens,
      seed: deriveSeed(config.seed, "eval-mixture"),
    },
    (done, total) => ctx.progress("mixture/eval", done, total),
  );
  const judged = await judgeEvaluation(ctx, {
    label: "mixture/eval",
    out: `${MIXTURE_DIR}/eval.jsonl`,
    ours: ours.map((xs) => xs.map((s) => s.text)),
    prev: readEvalRows(runDir, config.iterations),
    initial: readEvalRows(runDir, 0),
    logprobs: (items) => mixtureLogprobs(dirs, items),
  });
  return { iterates: dirs.length, ...judged };
}

interface JudgeEvaluationInput {
  label: string;
  /** Where the judged rows go, relative to the run directory. */
  out: string;
  /** ours[i][j]: sample j for eval prompt i; null where the sampler failed (not judged). */
  ours: (string | null)[][];
  prev: EvalRow[] | undefined;
  initial: EvalRow[] | undefined;
  logprobs: LogprobsFn;
}

type JudgedEvaluation = Omit<EvalResult, "t" | "validation_winrate_vs_initial">;

/** Judges evaluation samples against earlier ones and the teacher; writes the rows; task metrics. */
async function judgeEvaluation(
  ctx: IterationContext,
  input: JudgeEvaluationInput,
): Promise<JudgedEvaluation> {
  const { runDir, oracle } = ctx;
  const { ours, prev, initial } = input;
  const vs = { prev: [] as number[], initial: [] as number[], teacher: [] as number[] };
  const againstTeacher: HeadToHead[] = [];
  const rows: EvalRow[] = [];
  let lengthSum = 0;
  let produced = 0;
  for (let i = 0; i < ctx.evalRows.length; i++) {
    const r = ctx.evalRows[i]!;
    const texts = ours[i]!;
    const row: EvalRow = {
      id: r.id,
      prompt: r.prompt,
      samples: texts,
      vsPrev: [],
      vsInitial: [],
      vsTeacher: [],
    };
    for (let j = 0; j < texts.length; j++) {
      const text = texts[j]!;
      if (text === null) continue;
      produced++;
      lengthSum += charLength(text);
      const judge = async (other: string | null | undefined, into: (number | null)[], acc: number[]) => {
        if (other === undefined || other === null) return;
        const p = await oracle.compare(r.prompt, text, other);
        into.push(p);
        if (p !== null) acc.push(p);
      };
      await judge(prev?.[i]?.samples[j], row.vsPrev, vs.prev);
      await judge(initial?.[i]?.samples[j], row.vsInitial, vs.initial);
      await judge(r.gold, row.vsTeacher, vs.teacher);
      if (r.gold !== undefined) {
        const preference = row.vsTeacher[row.vsTeacher.length - 1] ?? null;
        againstTeacher.push({
          preference,
          modelLength: charLength(text),
          baselineLength: charLength(r.gold),
        });
      }
    }
    rows.push(row);
    ctx.progress(`${input.label} judge`, i + 1, ctx.evalRows.length);
  }
  writeJsonlAt(runDir, input.out, rows);
  const metrics = ctx.taskMetrics
    ? await ctx.taskMetrics(
        ctx.evalRows.map((r, i) => ({
          prompt: r.prompt,
          gold: r.gold,
          samples: ours[i]!.filter((x): x is string => x !== null),
        })),
        input.logprobs,
      )
    : {};
  return {
    winrate_vs_prev: meanOrNull(vs.prev),
    winrate_vs_initial: meanOrNull(vs.initial),
    winrate_vs_teacher: meanOrNull(vs.teacher),
    lc_winrate_vs_teacher: lengthControlledWinRate(againstTeacher)?.winRate ?? null,
    standard_errors: {
      vs_prev: seOrNull(vs.prev),
      vs_initial: seOrNull(vs.initial),
      vs_teacher: seOrNull(vs.teacher),
    },
    avg_length: produced === 0 ? 0 : lengthSum / produced,
    metrics,
  };
}

/** Win rate against pi_1 on the validation prompts: what chooses the best iterate. */
async function validate(ctx: IterationContext, t: number, sample: SampleFn): Promise<number | null> {
  const ours = (await sample(ctx.validationRows, "validation")).map((xs) => xs.map((s) => s?.text ?? null));
  writeJsonAt(ctx.runDir, `${iterDir(t)}/validation.json`, ours);
  if (t === 0) return 0.5;
  const initial = JSON.parse(readFileSync(join(ctx.runDir, iterDir(0), "validation.json"), "utf8")) as (
    | string
    | null
  )[][];
  const wins: number[] = [];
  for (let i = 0; i < ctx.validationRows.length; i++) {
    for (let j = 0; j < ours[i]!.length; j++) {
      const mine = ours[i]![j];
      const theirs = initial[i]![j];
      if (mine === null || mine === undefined || theirs === null || theirs === undefined) continue;
      const p = await ctx.oracle.compare(ctx.validationRows[i]!.prompt, mine, theirs);
      if (p !== null) wins.push(p);
    }
  }
  return meanOrNull(wins);
}

function selectBest(evals: readonly EvalResult[]): number {
  let best = evals.length;
  let bestValue = -Infinity;
  evals.forEach((e, i) => {
    const v = e.validation_winrate_vs_initial;
    if (v !== null && v > bestValue) {
      bestValue = v;
      best = i + 1;
    }
  });
  return best;
}

function meanOrNull(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : mean(xs);
}

function seOrNull(xs: readonly number[]): number | null {
  return xs.length < 2 ? null : standardErrorOfMean(xs);
}

/** Token-mean negative log-likelihood of the gold responses (SFT). */
function sftLoss(policy: Policy, batch: readonly TextExample[]): BatchLoss {
  const tokens = batch.reduce((s, e) => s + responseTokenCount(policy, e), 0);
  return (lp) => {
    let loss = 0;
    const grad = new Float64Array(lp.length).fill(-1 / tokens);
    for (let i = 0; i < lp.length; i++) loss -= lp[i]! / tokens;
    return { loss, grad, margin: null };
  };
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
