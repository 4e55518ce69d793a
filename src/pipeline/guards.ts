/**
 * Collapse guards: after each iteration, signs that the new policy broke rather than improved. A run
 * with a learning rate or beta too far off can turn a good SFT policy into bytes in one iteration,
 * while its pairs and losses look ordinary; these checks say so on stderr, in metrics.jsonl and in the
 * report, and `guards.stop_on_collapse` ends the run keeping the last iterate that passed them.
 */
import { join } from "node:path";
import { z } from "zod";
import { isDefective } from "../core/defects.js";
import type { PairComposition } from "../core/pairs.js";
import { readJsonl } from "../util/jsonl.js";
import type { RunConfig } from "./config.js";
import { type EvalResult, evalRowSchema } from "./records.js";

export const guardsConfigSchema = z
  .strictObject({
    stop_on_collapse: z
      .boolean()
      .default(false)
      .describe(
        "stop after the first iteration that trips a guard; the last iterate that passed is the result",
      ),
    min_winrate_vs_initial: z
      .number()
      .min(0)
      .max(1)
      .default(0.4)
      .describe("trips when the win rate against the initial policy falls below this"),
    metrics: z
      .array(z.string().min(1))
      .default(["accuracy"])
      .describe("task metrics (higher is better) that must not fall sharply"),
    max_metric_drop: z
      .number()
      .gt(0)
      .max(1)
      .default(0.3)
      .describe("trips when a watched metric falls by more than this fraction of its previous value"),
    max_length_ratio: z
      .number()
      .gt(1)
      .default(2)
      .describe("trips when the mean response length exceeds this multiple of the initial policy's"),
    max_defective_share: z
      .number()
      .min(0)
      .max(1)
      .default(0.25)
      .describe(
        "trips when more evaluation samples than this share (and than pi_1's) loop or hold invalid UTF-8",
      ),
  })
  .prefault({})
  .describe(
    "collapse guards, checked after every iteration (also: every fresh pair teacher-over-student, unless by design)",
  );

export type GuardsConfig = z.infer<typeof guardsConfigSchema>;

export type GuardName = "winrate_vs_initial" | "metric_drop" | "length" | "teacher_only_pairs" | "defective";

export interface GuardWarning {
  /** The iteration whose policy (pi_{t+1}) tripped the guard. */
  t: number;
  guard: GuardName;
  message: string;
}

/** What the guards look at for one evaluated policy (t = 0 is pi_1). */
export interface GuardInput {
  evaluation: EvalResult;
  /** The iteration's fresh pairs; absent at t = 0. */
  pairs?: PairComposition;
  /** Share of the evaluation samples that are defective (see defectiveShare). */
  defectiveShare: number;
}

export interface GuardContext {
  config: GuardsConfig;
  /** Pairs are teacher-over-student by design (teacher-only positives, or SPIN's rule). */
  teacherPairsByDesign: boolean;
}

export function guardContext(config: RunConfig): GuardContext {
  const teacherOnly = config.pairs.positive_sources.every((s) => s === "teacher");
  return { config: config.guards, teacherPairsByDesign: teacherOnly || config.pairs.rule === "spin" };
}

/** The guards' view of an evaluated policy: its result, its iteration's pairs, its samples' defects. */
export function readGuardInput(
  runDir: string,
  config: RunConfig,
  evaluation: EvalResult,
  pairs?: PairComposition,
): GuardInput {
  const d = config.pairs.defects;
  const rows = readJsonl(join(runDir, `iterations/${evaluation.t}/eval.jsonl`), evalRowSchema);
  const share = defectiveShare(
    // A sample the sampler failed to produce (null) is not the policy's answer.
    rows.flatMap((r) => r.samples.filter((x): x is string => x !== null)),
    { n: d.n, maxRepeatFraction: d.max_repeat_fraction },
  );
  return { evaluation, defectiveShare: share, ...(pairs && { pairs }) };
}

/** Every iteration's warnings, for inputs[0..] = pi_1, pi_2, ... */
export function allGuardWarnings(inputs: readonly GuardInput[], ctx: GuardContext): GuardWarning[] {
  return inputs.flatMap((_, t) => guardWarnings(inputs.slice(0, t + 1), ctx));
}

/**
 * The warnings for iteration t = inputs.length - 1, given every evaluation so far (inputs[0] is pi_1).
 * Pure: the same inputs give the same warnings, so a resumed run stops where an uninterrupted one did.
 */
export function guardWarnings(inputs: readonly GuardInput[], ctx: GuardContext): GuardWarning[] {
  const t = inputs.length - 1;
  if (t < 1) return [];
  const { config } = ctx;
  const now = inputs[t]!;
  const prev = inputs[t - 1]!;
  const initial = inputs[0]!;
  const out: GuardWarning[] = [];
  const warn = (guard: GuardName, message: string) => out.push({ t, guard, message });
  const e = now.evaluation;
  if (e.winrate_vs_initial !== null && e.winrate_vs_initial < config.min_winrate_vs_initial) {
    warn(
      "winrate_vs_initial",
      `win rate against the initial policy ${e.winrate_vs_initial.toFixed(3)} < ${config.min_winrate_vs_initial}`,
    );
  }
  for (const name of config.metrics) {
    const before = prev.evaluation.metrics[name];
    const after = e.metrics[name];
    if (before === undefined || after === undefined || !(before > 0)) continue;
    if (!(after >= before * (1 - config.max_metric_drop))) {
      warn(
        "metric_drop",
        `${name} fell from ${before.toFixed(3)} to ${fmt(after)} (more than ${pct(config.max_metric_drop)})`,
      );
    }
  }
  const base = initial.evaluation.avg_length;
  if (base > 0 && e.avg_length > config.max_length_ratio * base) {
    warn(
      "length",
      `mean response length ${e.avg_length.toFixed(1)} is ${(e.avg_length / base).toFixed(1)}x the initial policy's ${base.toFixed(1)}`,
    );
  }
  const p = now.pairs;
  if (!ctx.teacherPairsByDesign && p && p.total > 0 && p.teacher_over_student === p.total) {
    warn(
      "teacher_only_pairs",
      `all ${p.total} pairs are teacher-over-student: no sample of the policy won a pair (the policy may be broken from the start)`,
    );
  }
  if (now.defectiveShare > config.max_defective_share && now.defectiveShare > initial.defectiveShare) {
    warn(
      "defective",
      `${pct(now.defectiveShare)} of evaluation samples are defective (repeated n-grams or invalid UTF-8), pi_1: ${pct(initial.defectiveShare)}`,
    );
  }
  return out;
}

/** A sample is defective when it loops (repeated n-grams) or holds bytes that are not valid UTF-8. */
export function defectiveShare(
  samples: readonly string[],
  defects: { n: number; maxRepeatFraction: number },
): number {
  if (samples.length === 0) return 0;
  const bad = samples.filter((s) => s.includes("\ufffd") || isDefective(s, defects)).length;
  return bad / samples.length;
}

/** One line for stderr. */
export function guardLine(w: GuardWarning): string {
  return `WARNING collapse guard (iteration ${w.t}, ${w.guard}): ${w.message}`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : String(x);
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}
