/**
 * The eval stages: pi_{t+1} (pi_1 for eval/0) on the held-out prompts, judged by the run's oracle
 * against pi_t's, pi_1's and the teacher's answers, with the task metrics; the win rate against pi_1
 * on the validation prompts that chooses the best iterate; and the mixture of iterates pi_1..pi_T
 * (Algorithm 1's output). A goal-conditioned policy is asked for the highest goal (goals.ts).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { deriveSeed } from "../core/rng.js";
import { type HeadToHead, lengthControlledWinRate } from "../eval/length-controlled.js";
import { charLength, mean, standardErrorOfMean } from "../eval/winrate.js";
import { readJsonl } from "../util/jsonl.js";
import type { RunConfig } from "./config.js";
import type { PromptRow } from "./data.js";
import { generationPrompt } from "./goals.js";
import type { RunOracle } from "./oracle.js";
import { iterDir, MIXTURE_DIR, mixtureIterates, policyPath } from "./paths.js";
import { loadPolicy, mixtureLogprobs, type SampledText, sampleMixture, sequenceLogprobs } from "./policy.js";
import { type EvalResult, type EvalRow, evalRowSchema, type MixtureEvalResult } from "./records.js";
import { PROMPTS_PER_BATCH, type Sampler, type SamplerSession, withSession } from "./sampler.js";
import { keptBatches, type ProgressFn, writeJsonAt, writeJsonlAt } from "./stages.js";
import type { LogprobsFn, TaskMetricsFn } from "./task-metrics.js";

export interface EvaluationContext {
  config: RunConfig;
  runDir: string;
  progress: ProgressFn;
  oracle: RunOracle;
  taskMetrics: TaskMetricsFn | undefined;
  evalRows: PromptRow[];
  validationRows: PromptRow[];
  sampler: Sampler;
}

type SampleFn = (rows: PromptRow[], key: string) => Promise<(SampledText | null)[][]>;

/**
 * Evaluates pi_{t+1} (pi_1 for t = 0) on the held-out prompts: M samples per prompt, each judged
 * against the same-index sample of pi_t and of pi_1, and against the teacher's gold answer.
 */
export async function evaluate(ctx: EvaluationContext, t: number): Promise<EvalResult> {
  const stage = t === 0 ? "eval/0" : `${t}/eval`;
  return withSession(ctx.sampler, join(ctx.runDir, policyPath(t + 1)), stage, (session) =>
    evaluateWith(ctx, t, session),
  );
}

async function evaluateWith(ctx: EvaluationContext, t: number, session: SamplerSession): Promise<EvalResult> {
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
export async function evaluateMixture(ctx: EvaluationContext): Promise<MixtureEvalResult> {
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
  ctx: EvaluationContext,
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
async function validate(ctx: EvaluationContext, t: number, sample: SampleFn): Promise<number | null> {
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

/** The iterate (1-based) with the best validation win rate against pi_1; the last one without validation. */
export function selectBest(evals: readonly EvalResult[]): number {
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
