/**
 * `dno run`: T iterations of DNO-Prct (Algorithm 2, ../../docs/ARCHITECTURE.md), each a chain of atomic,
 * resumable stages over the run directory:
 *
 *   prepare                      data/ (inputs copied in, prompts split into T partitions)
 *   init, sft                    checkpoints/pi_1 (pi_ref: the initial policy, after SFT if configured)
 *   eval/0                       iterations/0/eval.jsonl (pi_1 on the held-out prompts)
 *   per iteration t = 1..T:
 *     t/sample                   iterations/t/samples.jsonl: K samples of pi_t per prompt
 *     t/annotate                 iterations/t/annotations.jsonl: oracle judgments, r^, defects
 *     t/pairs                    iterations/t/pairs.jsonl: large-margin pairs + replay
 *     t/reference                iterations/t/pairs.trl.jsonl: text, token ids, reference log-probs
 *     t/train                    checkpoints/pi_{t+1}, iterations/t/train-args.json, train-log.jsonl
 *     t/eval                     iterations/t/eval.jsonl: pi_{t+1} vs pi_t, pi_1 and the teacher
 *   select                       the best iterate on validation prompts
 *
 * Sampling goes through the configured `Sampler` (sampler.ts), training through the `Trainer`
 * (trainer.ts); both default to the native engine.
 * metrics.jsonl and the report are derived from the stages' results and rewritten as they finish.
 * Every random choice draws from Rng.derive(seed, stage, t), so a resumed run ends with the same
 * weights as an uninterrupted one.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isDefective } from "../core/defects.js";
import { exploreSample } from "../core/explore.js";
import { getObjective } from "../core/objectives.js";
import {
  type Candidate,
  type Pair,
  type PairComposition,
  pairComposition,
  scorePairs,
  spinPairs,
  winRatePairs,
} from "../core/pairs.js";
import { negativeId, negativePrefix, promptedPairs } from "../core/prompted-pairs.js";
import { withReplay } from "../core/replay.js";
import { deriveSeed, Rng } from "../core/rng.js";
import { preferencesFromScores, winRateEstimates } from "../core/winrate.js";
import { engine } from "../engine/index.js";
import { type HeadToHead, lengthControlledWinRate } from "../eval/length-controlled.js";
import { charLength, mean, standardErrorOfMean } from "../eval/winrate.js";
import { setDefaultPrecision } from "../model/precision.js";
import { pairwiseWinRates } from "../oracle/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readInputRecords, readJsonl, toJsonl } from "../util/jsonl.js";
import { type BenchmarkResult, benchmarkOutputs, benchmarkStage, writeBenchmarks } from "./benchmark.js";
import { offlineFirstRound, type RunConfig } from "./config.js";
import { type PromptRow, partitionCount, promptRowSchema, readRunInputs } from "./data.js";
import { generationPrompt, goalPairs, pairPrompt } from "./goals.js";
import { type GuardInput, type GuardWarning, guardContext, guardWarnings, readGuardInput } from "./guards.js";
import { openRunOracle, type RunOracle } from "./oracle.js";
import { iterDir, MIXTURE_DIR, mixtureIterates, policyPath } from "./paths.js";
import {
  type BatchLoss,
  encodeExample,
  encodePromptText,
  encodeResponse,
  initPolicy,
  loadPolicy,
  loadPolicyText,
  mixtureLogprobs,
  type Policy,
  type PolicyText,
  policyShape,
  policyWeightsSha256,
  responseIds,
  responseTokenCount,
  type SampledText,
  sampleMixture,
  savePolicy,
  sequenceLogprobs,
  tokenSequenceLogprobs,
  trainSteps,
} from "./policy.js";
import { openTrainOracle } from "./policy-oracles.js";
import {
  type AnnotationRow,
  annotationRowSchema,
  type EvalResult,
  type EvalRow,
  evalRowSchema,
  type MixtureEvalResult,
  offlinePreferenceSchema,
  type PairRow,
  pairRowSchema,
  type SampleRow,
  sampleRowSchema,
  type TrlRow,
} from "./records.js";
import { openRunDir } from "./run-dir.js";
import { createSampler, type Sampler, type SamplerSession } from "./sampler.js";
import { searchStage } from "./search.js";
import { keptBatches, runStage, type StageEvents, writeDirAt, writeJsonAt, writeJsonlAt } from "./stages.js";
import { type LogprobsFn, loadTaskMetrics, type TaskMetricsFn } from "./task-metrics.js";
import { createTrainer, type Trainer, trainArgsOf } from "./trainer.js";

/** Progress of a long stage: `done` of `total` units (prompts, comparisons, steps). */
export type ProgressFn = (stage: string, done: number, total: number) => void;

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
  pairs: { t: number; composition: ReturnType<typeof pairComposition> }[];
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

/** Prompts sampled between two saves of a sampling stage's progress. */
const PROMPTS_PER_BATCH = 32;
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
      const dataT = config.pairs.offline ? 1 : t;
      const dir = iterDir(t);
      let composition: PairComposition;
      if (config.search) {
        // MCTS-DPO: a tree search over steps yields step-level pairs directly (src/pipeline/search.ts).
        const r = await stage(`${t}/search`, [`${dir}/pairs.jsonl`, `${dir}/search.jsonl`], () =>
          searchStage(ctx, t, join(runDir, policyPath(t)), partitions[t - 1]!, dir),
        );
        spent.push({ t, tokens: r.tokens, judgments: r.judgments });
        composition = pairComposition(readJsonl(join(runDir, dir, "pairs.jsonl"), pairRowSchema));
      } else {
        if (dataT === t && !(offlineFirstRound(config) && t === 1)) {
          const s = await stage(`${t}/sample`, [`${dir}/samples.jsonl`], () =>
            sampleStage(ctx, t, partitions[t - 1]!),
          );
          const a = await stage(`${t}/annotate`, [`${dir}/annotations.jsonl`], () => annotateStage(ctx, t));
          spent.push({ t, tokens: s.tokens, judgments: a.calls });
        }
        composition = await stage(`${t}/pairs`, [`${dir}/pairs.jsonl`], () => pairStage(ctx, t, dataT));
      }
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

type StageFn = <T>(name: string, outputs: readonly string[], work: () => Promise<T> | T) => Promise<T>;

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
      const examples = rows.map((r, i) => {
        if (r.gold === undefined)
          throw new DnoError(`${config.sft!.data}: line ${i + 1}: SFT needs a "gold" answer`);
        return { prompt: r.prompt, response: r.gold };
      });
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

async function sampleStage(
  ctx: IterationContext,
  t: number,
  partition: PromptRow[],
): Promise<{ prompts: number; samples: number; failed: number; tokens: number }> {
  const { config } = ctx;
  const s = config.sampling;
  const K = s.samples_per_prompt;
  const kept = (key: string) => `${iterDir(t)}/${key}.partial`;
  return withSession(ctx, t, `${t}/sample`, async (session) => {
    const sample = (prompts: string[], key: string) =>
      keptBatches(ctx.runDir, kept(key), prompts.length, PROMPTS_PER_BATCH, (start, end) =>
        session.sample(
          prompts.slice(start, end),
          {
            samplesPerPrompt: K,
            temperature: s.temperature,
            topP: s.top_p,
            topK: s.top_k,
            maxNewTokens: s.max_new_tokens,
            seed: deriveSeed(config.seed, key, t),
            firstPromptIndex: start,
          },
          (done) => ctx.progress(`${t}/${key}`, start * K + done, prompts.length * K),
        ),
      );
    const samples = await sample(
      partition.map((r) => generationPrompt(config, t)(r.prompt)),
      "sample",
    );
    const prefixes = config.pairs.rule === "prompted" ? config.pairs.negative_prefixes! : undefined;
    const negatives =
      prefixes &&
      (await sample(
        partition.map((r) => negativePrefix(prefixes, t) + r.prompt),
        "sample-negative",
      ));
    const rows: SampleRow[] = partition.map((r, i) => ({
      ...r,
      samples: samples[i]!,
      ...(negatives && { negatives: negatives[i]! }),
    }));
    writeJsonlAt(ctx.runDir, `${iterDir(t)}/samples.jsonl`, rows);
    for (const key of ["sample", "sample-negative"])
      rmSync(join(ctx.runDir, kept(key)), { recursive: true, force: true });
    const failed = rows.reduce((n, r) => n + r.samples.filter((x) => x === null).length, 0);
    const tokens = rows.reduce((n, r) => n + r.samples.reduce((m, x) => m + (x?.tokens.length ?? 0), 0), 0);
    return { prompts: rows.length, samples: rows.length * s.samples_per_prompt - failed, failed, tokens };
  });
}

/** Serves pi_k through the run's sampler for the length of one stage. */
async function withSession<T>(
  ctx: IterationContext,
  k: number,
  stage: string,
  work: (session: SamplerSession) => Promise<T>,
): Promise<T> {
  const session = await ctx.sampler.open(join(ctx.runDir, policyPath(k)), stage);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}

/** Judges every prompt's candidate set {y^1..y^K, y_gold}; r^ counts only pi_t's samples as opponents. */
async function annotateStage(ctx: IterationContext, t: number): Promise<{ calls: number; failed: number }> {
  const { config } = ctx;
  const trainOracle = config.train_oracle && (await openTrainOracle(config.train_oracle, ctx.runDir, t));
  try {
    return await annotateWith(ctx, t, trainOracle ?? ctx.oracle);
  } finally {
    trainOracle?.close();
  }
}

async function annotateWith(
  ctx: IterationContext,
  t: number,
  oracle: RunOracle,
): Promise<{ calls: number; failed: number }> {
  const { config } = ctx;
  const rows = readJsonl(join(ctx.runDir, iterDir(t), "samples.jsonl"), sampleRowSchema);
  const callsBefore = oracle.calls();
  const defects = { n: config.pairs.defects.n, maxRepeatFraction: config.pairs.defects.max_repeat_fraction };
  const out: AnnotationRow[] = [];
  let failed = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    // A failed sample is never a candidate; the others keep their sample index in their id.
    const ids: string[] = [];
    const texts: string[] = [];
    const sources: Candidate["source"][] = [];
    row.samples.forEach((s, j) => {
      if (s === null) return;
      ids.push(`s${j}`);
      texts.push(s.text);
      sources.push("student");
    });
    const negatives = (row.negatives ?? []).flatMap((s, j) => (s === null ? [] : [{ j, text: s.text }]));
    if (config.sampling.include_gold && row.gold !== undefined) {
      ids.push("gold");
      texts.push(row.gold);
      sources.push("teacher");
    }
    const students = sources.flatMap((s, j) => (s === "student" ? [j] : []));
    let scores: (number | null)[] = texts.map(() => null);
    let winRates: (number | null)[] = texts.map(() => null);
    if (config.pairs.rule !== "spin" && config.pairs.rule !== "prompted") {
      let matrix: (number | null)[][];
      if (config.pairs.rule === "score" || oracle.mode === "pointwise") {
        scores = await oracle.score(row.prompt, texts);
        matrix = preferencesFromScores(scores);
      } else {
        matrix = (
          await pairwiseWinRates(
            async (p, a, b) => ({ preference: await oracle.compare(p, a, b) }),
            row.prompt,
            texts,
          )
        ).matrix;
      }
      winRates = winRateEstimates(matrix, { opponents: students });
      failed += winRates.filter((w) => w === null).length;
    }
    out.push({
      id: row.id,
      prompt: row.prompt,
      candidates: texts.map((text, j) => ({
        id: ids[j]!,
        source: sources[j]!,
        text,
        score: scores[j] ?? null,
        winRate: winRates[j] ?? null,
        defect: sources[j] === "student" && isDefective(text, defects),
      })),
    });
    // Only-prompting: the answers under the worse-answer prefix are candidates too, never judged.
    out[out.length - 1]!.candidates.push(
      ...negatives.map(({ j, text }) => ({
        id: negativeId(j),
        source: "student" as const,
        text,
        score: null,
        winRate: null,
        defect: isDefective(text, defects),
      })),
    );
    ctx.progress(`${t}/annotate`, i + 1, rows.length);
  }
  writeJsonlAt(ctx.runDir, `${iterDir(t)}/annotations.jsonl`, out);
  return { calls: oracle.calls() - callsBefore, failed };
}

async function pairStage(ctx: IterationContext, t: number, dataT: number) {
  const { config, runDir } = ctx;
  const readPairs = (k: number) => readJsonl(join(runDir, iterDir(k), "pairs.jsonl"), pairRowSchema);
  let rows: PairRow[];
  const offlineFile = config.pairs.offline_data?.file;
  const policy = loadPolicyText(join(runDir, policyPath(t)));
  if (offlineFirstRound(config) && t === 1) {
    // DICE's first round: DPO on the offline preference data alone.
    rows = readOfflinePairs(offlineFile!, t, policy);
  } else if (dataT !== t) {
    // Offline: every iteration trains on the first iteration's pairs again.
    rows = readPairs(dataT).map((p) => ({ ...p, iteration: t, replayedFrom: dataT }));
  } else {
    const annotations = readJsonl(join(runDir, iterDir(t), "annotations.jsonl"), annotationRowSchema);
    const p = config.pairs;
    const options = {
      ...(p.min_positive !== undefined && { minPositive: p.min_positive }),
      ...(p.margin !== undefined && { margin: p.margin }),
      ...(p.student_margin !== undefined && { studentMargin: p.student_margin }),
      pairsPerPrompt: p.pairs_per_prompt,
      positiveSources: p.positive_sources,
    };
    const samples = new Map(
      readJsonl(join(runDir, iterDir(t), "samples.jsonl"), sampleRowSchema).map((r) => [r.id, r]),
    );
    const texts = new Map<string, AnnotationRow>();
    const fresh: Pair[] = [];
    for (const a of annotations) {
      texts.set(a.id, a);
      const build =
        p.rule === "spin"
          ? spinPairs(a.id, a.candidates, config.seed, t, p.pairs_per_prompt)
          : p.rule === "prompted"
            ? promptedPairs(a.id, a.candidates, t, p.pairs_per_prompt)
            : (p.rule === "score" ? scorePairs : winRatePairs)(a.id, a.candidates, options, config.seed, t);
      fresh.push(...goalPairs(config, build, a.candidates));
    }
    const earlier: PairRow[][] = [];
    for (let k = t - 1; k >= 1 && earlier.length < p.replay.length; k--) earlier.push(readPairs(k));
    const all: (Pair | PairRow)[] = withReplay(fresh, earlier, p.replay, config.seed, t);
    if (p.offline_data) {
      // DICE's experience replay: offline pairs make up `fraction` of the iteration's pairs.
      const { fraction } = p.offline_data;
      const count = Math.round((fraction / (1 - fraction)) * fresh.length);
      const pool = readOfflinePairs(p.offline_data.file, t, policy);
      all.push(...Rng.derive(config.seed, "offline-replay", t).shuffle(pool).slice(0, count));
    }
    const explores = getObjective(config.objective.name).needs.includes("explore");
    rows = all.map((pair) => {
      if (pair.replayedFrom !== undefined) return pair as PairRow;
      const a = texts.get(pair.promptId)!;
      const c = (id: string) => a.candidates.find((x) => x.id === id)!;
      const explore = explores ? exploreSample(a.id, a.candidates, config.seed, t) : undefined;
      const ids = candidateIds(policy, samples.get(a.id)!);
      return {
        ...(explore !== undefined && {
          exploreText: explore.text,
          exploreIds: ids(explore.id, explore.text),
        }),
        ...pair,
        prompt: pairPrompt(config, a.prompt, pair.goal),
        chosenText: c(pair.chosen).text,
        rejectedText: c(pair.rejected).text,
        chosenWinRate: c(pair.chosen).winRate,
        rejectedWinRate: c(pair.rejected).winRate,
        promptIds: encodePromptText(policy, pairPrompt(config, a.prompt, pair.goal)),
        chosenIds: ids(pair.chosen, c(pair.chosen).text),
        rejectedIds: ids(pair.rejected, c(pair.rejected).text),
      };
    });
  }
  if (rows.length === 0) {
    throw new DnoError(
      `iteration ${t}: no pairs passed the pair rule (pairs.rule ${config.pairs.rule}); lower pairs.margin`,
    );
  }
  writeJsonlAt(runDir, `${iterDir(t)}/pairs.jsonl`, rows);
  const offlineOnly = offlineFirstRound(config) && t === 1;
  return pairComposition(rows.filter((r) => r.replayedFrom === undefined || dataT !== t || offlineOnly));
}

/**
 * The ids a candidate is scored and trained on: a sample's (or a worse-answer sample's) ids as drawn,
 * closed by EOS when it ended with one; the gold answer tokenised, plus EOS.
 */
function candidateIds(policy: PolicyText, row: SampleRow): (id: string, text: string) => number[] {
  return (id, text) => {
    const negative = /^n(\d+)$/.exec(id);
    const drawn = id.startsWith("s")
      ? row.samples[Number(id.slice(1))]
      : negative
        ? row.negatives?.[Number(negative[1])]
        : undefined;
    return drawn
      ? responseIds(policy, drawn.tokens, drawn.finished)
      : encodeResponse(policy, text, encodePromptText(policy, row.prompt));
  };
}

/** The offline preference file's pairs, marked as replayed from iteration 0 (never built by the run). */
function readOfflinePairs(file: string, t: number, policy: PolicyText): PairRow[] {
  const records = readInputRecords(file, offlinePreferenceSchema, "preference pairs", (r) => r.id);
  return records.map(({ value: r }, i) => {
    const promptIds = encodePromptText(policy, r.prompt);
    return {
      promptId: `offline-${r.id ?? i + 1}`,
      chosen: "offline-chosen",
      rejected: "offline-rejected",
      chosenSource: "teacher",
      rejectedSource: "teacher",
      rule: "offline",
      margin: null,
      target: null,
      iteration: t,
      replayedFrom: 0,
      prompt: r.prompt,
      chosenText: r.chosen,
      rejectedText: r.rejected,
      chosenWinRate: null,
      rejectedWinRate: null,
      promptIds,
      chosenIds: encodeResponse(policy, r.chosen, promptIds),
      rejectedIds: encodeResponse(policy, r.rejected, promptIds),
    };
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
  return withSession(ctx, t + 1, stage, (session) => evaluateWith(ctx, t, session));
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
function sftLoss(policy: Policy, batch: readonly { prompt: string; response: string }[]): BatchLoss {
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
