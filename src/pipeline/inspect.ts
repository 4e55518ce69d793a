/**
 * Reading a run directory after the fact: `dno status` and `dno report`. Read-only: the state is opened
 * read-only, and every recorded file is checked against its SHA-256.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { z } from "zod";
import type { PairComposition } from "../core/pairs.js";
import { cachedJudgmentCount } from "../oracle/cache.js";
import type { ReportData, ReportIteration, ReportSamples } from "../report/html.js";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";
import type { BenchmarkResult } from "./benchmark.js";
import { loadRunConfig, offlineFirstRound, type RunConfig } from "./config.js";
import { promptRowSchema } from "./data.js";
import {
  allGuardWarnings,
  type GuardInput,
  guardContext,
  guardsConfigSchema,
  readGuardInput,
} from "./guards.js";
import { type EvalResult, evalRowSchema, type MixtureEvalResult, type TrainLogRow } from "./records.js";
import { refuseResultsWithoutState, runDamage } from "./run-dir.js";
import { RunState, type StageRecord } from "./state.js";

export interface RunSnapshot {
  runDir: string;
  config: RunConfig;
  stages: StageRecord[];
  /** Every stage the config implies, in order. */
  plan: string[];
  /** Recorded files (stage outputs, the config snapshot) that are missing or changed. */
  damage: { stage: string; message: string }[];
}

export function readRun(runDir: string): RunSnapshot {
  if (!RunState.usable(runDir)) {
    refuseResultsWithoutState(runDir);
    const config = configIn(runDir);
    if (config !== undefined) {
      throw new DnoError(
        `${runDir}: not a dno run directory (no state.sqlite) but a config folder; ` +
          `give its run directory instead: ${shown(config.runDir)} (run_dir of ${config.file})`,
      );
    }
  }
  const state = RunState.open(runDir, { create: false });
  try {
    const text = state.getMeta("config");
    if (text === undefined)
      throw new DnoError(`${runDir}: the run state has no config; the run directory is damaged`);
    const config = JSON.parse(text) as RunConfig;
    return { runDir, config, stages: state.all(), plan: stagePlan(config), damage: runDamage(state) };
  } finally {
    state.close();
  }
}

export function stagePlan(config: RunConfig): string[] {
  const bench = (t: number) => (config.eval.benchmark ? [`${t}/benchmark`] : []);
  const plan = ["prepare", ...(config.model.from_scratch ? ["init"] : []), "sft", "eval/0", ...bench(0)];
  for (let t = 1; t <= config.iterations; t++) {
    const fresh = (!config.pairs.offline || t === 1) && !(offlineFirstRound(config) && t === 1);
    plan.push(
      ...(fresh ? [`${t}/sample`, `${t}/annotate`] : []),
      `${t}/pairs`,
      `${t}/reference`,
      `${t}/train`,
      `${t}/eval`,
      ...bench(t),
    );
  }
  plan.push("select", ...(config.eval.mixture ? ["mixture"] : []));
  return plan;
}

/** A run config in `dir` (such as `dno init`'s dno.yaml), with the run directory it names. */
function configIn(dir: string): { file: string; runDir: string } | undefined {
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    const file = join(dir, name);
    try {
      return { file, runDir: loadRunConfig(file).run_dir };
    } catch {
      // Not a run config (an oracle config, say): look at the next file.
    }
  }
  return undefined;
}

/** A path as the user would type it from here. */
function shown(path: string): string {
  return relative(process.cwd(), path) || ".";
}

/** Human-readable status: finished stages with their time (or their damage), then what runs next. */
export function statusText(run: RunSnapshot): string {
  const done = new Map(run.stages.map((s) => [s.name, s]));
  const damaged = new Set(run.damage.map((d) => d.stage));
  const intact = run.stages.filter((s) => !damaged.has(s.name)).length;
  const lines = [`run ${run.runDir}: ${intact} of ${run.plan.length} stages finished`];
  if (damaged.size > 0) lines[0] += `, ${run.stages.length - intact} damaged`;
  for (const name of run.plan) {
    const s = done.get(name);
    const mark = damaged.has(name) ? "DAMAGED" : "done";
    lines.push(
      s
        ? `  ${mark.padEnd(7)} ${name.padEnd(14)} ${s.seconds.toFixed(1).padStart(7)} s  ${s.finishedAt}`
        : `  todo    ${name}`,
    );
  }
  for (const d of run.damage) lines.push(`damaged: ${d.message}`);
  const next = nextStage(run);
  // The snapshot resumes the run: it is the config as run, paths absolute, every default filled in.
  const resume = `dno run --config ${shown(join(run.runDir, "config.yaml"))}`;
  if (damaged.size > 0) lines.push("dno run refuses this directory until the files above are restored");
  else if (next) lines.push(`next: ${next} (${resume} continues)`);
  else if (run.plan.every((n) => done.has(n))) lines.push("finished");
  else
    lines.push(
      "finished early: a collapse guard stopped the run (guards.stop_on_collapse); the stages left never run",
    );
  return lines.join("\n");
}

/** The stage a `dno run` would do next; undefined once the run has chosen its result. */
export function nextStage(run: RunSnapshot): string | undefined {
  const done = new Set(run.stages.map((s) => s.name));
  return done.has("select") ? undefined : run.plan.find((n) => !done.has(n));
}

/** Throws the first damage as a DnoError: a damaged run is never reported as if it were whole. */
export function checkUndamaged(run: RunSnapshot): void {
  const first = run.damage[0];
  if (first) {
    const more = run.damage.length > 1 ? ` (and ${run.damage.length - 1} more; dno status lists them)` : "";
    throw new DnoError(`${first.message}${more}`);
  }
}

const trainLogSchema = z.strictObject({
  step: z.number(),
  lr: z.number(),
  loss: z.number(),
  margin: z.number().nullable(),
});

export function reportData(run: RunSnapshot): ReportData {
  const byName = new Map(run.stages.map((s) => [s.name, s]));
  const { config } = run;
  const iterations: ReportIteration[] = [];
  const training: ReportData["training"] = [];
  const sftLog = join(run.runDir, "iterations/sft-log.jsonl");
  if (existsSync(sftLog))
    for (const r of readJsonl(sftLog, trainLogSchema)) training.push({ t: 0, ...pick(r) });
  // Runs started before guards existed have none in their config: the defaults apply.
  const guarded = { ...config, guards: guardsConfigSchema.parse(config.guards ?? {}) };
  const guardInputs: GuardInput[] = [];
  const samples: ReportSamples[] = [];
  for (let t = 0; t <= config.iterations; t++) {
    const e = byName.get(t === 0 ? "eval/0" : `${t}/eval`)?.result as EvalResult | undefined;
    if (!e) break;
    const pairs = byName.get(`${t}/pairs`)?.result as PairComposition | undefined;
    const seconds = run.stages.filter((s) => s.name.startsWith(`${t}/`)).reduce((a, s) => a + s.seconds, 0);
    const benchmark = byName.get(`${t}/benchmark`)?.result as BenchmarkResult | undefined;
    iterations.push({
      ...e,
      ...(pairs && { pairs }),
      ...(benchmark && {
        benchmark: { kind: benchmark.kind, score: benchmark.score, low: benchmark.low, high: benchmark.high },
      }),
      seconds,
    });
    guardInputs.push(readGuardInput(run.runDir, guarded, e, pairs));
    samples.push(sampleTable(run.runDir, t));
    const log = join(run.runDir, `iterations/${t}/train-log.jsonl`);
    if (t > 0 && existsSync(log))
      for (const r of readJsonl(log, trainLogSchema)) training.push({ t, ...pick(r) });
  }
  const trained = run.stages.filter((s) => /^\d+\/train$/.test(s.name));
  const last = trained[trained.length - 1]?.result as { weightsSha256: string } | undefined;
  const selected = byName.get("select")?.result as number | undefined;
  const lastT = iterations[iterations.length - 1]?.t ?? 0;
  const cacheFile = join(run.runDir, "oracle-cache.sqlite");
  const judgments = existsSync(cacheFile) ? cachedJudgmentCount(cacheFile) : 0;
  return {
    title: `dno run: ${config.objective.name}, ${config.iterations} iterations`,
    settings: {
      "run directory": run.runDir,
      objective: config.objective.name,
      beta: config.objective.beta,
      "pair rule": config.pairs.rule,
      "positive sources": config.pairs.positive_sources.join(", "),
      "samples per prompt (K)": config.sampling.samples_per_prompt,
      "sampling temperature": config.sampling.temperature,
      iterations: config.iterations,
      seed: config.seed,
      "stages finished": `${run.stages.length} of ${run.plan.length}`,
    },
    iterations,
    mixture: (byName.get("mixture")?.result as MixtureEvalResult | undefined) ?? null,
    training,
    best: selected ?? iterations.length,
    chosenBy: config.data.validation ? "validation" : "last",
    stoppedAfter: selected !== undefined && lastT < config.iterations ? lastT : null,
    finished: selected !== undefined,
    warnings: allGuardWarnings(guardInputs, guardContext(guarded)),
    samples,
    finalWeightsSha256: last?.weightsSha256 ?? "(not finished)",
    oracleJudgments: judgments,
  };
}

/** Prompts shown per iteration in the report's sample tables. */
const SAMPLE_PROMPTS = 4;

/** The first held-out prompts' answers by the policy after iteration t, with their judgments. */
function sampleTable(runDir: string, t: number): ReportSamples {
  const rows = readJsonl(join(runDir, `iterations/${t}/eval.jsonl`), evalRowSchema).slice(0, SAMPLE_PROMPTS);
  const gold = new Map(
    readJsonl(join(runDir, "data/eval.jsonl"), promptRowSchema).map((r) => [r.id, r.gold]),
  );
  return {
    t,
    prompts: rows.map((r) => ({
      prompt: r.prompt,
      gold: gold.get(r.id) ?? null,
      answers: r.samples.map((text, j) => ({
        text,
        vsPrev: r.vsPrev[j] ?? null,
        vsInitial: r.vsInitial[j] ?? null,
        vsTeacher: r.vsTeacher[j] ?? null,
      })),
    })),
  };
}

function pick(r: TrainLogRow): { step: number; loss: number; margin: number | null } {
  return { step: r.step, loss: r.loss, margin: r.margin };
}
