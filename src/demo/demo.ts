/**
 * `dno demo`: the whole DNO-Prct loop on the built-in reversal task (src/demo/task.ts), from scratch,
 * on CPU, in minutes. The demo is an ordinary run: it writes its prompt files and a dno.yaml into the
 * output directory and runs the pipeline on them, so `dno run --config OUT/dno.yaml` resumes it and
 * `dno report` renders it.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as toYaml } from "yaml";
import { loadRunConfig, type RunConfigInput } from "../pipeline/config.js";
import { type ProgressFn, type RunOptions, type RunResult, runPipeline } from "../pipeline/run.js";
import type { StageEvents } from "../pipeline/stages.js";
import { writeFileAtomic } from "../util/atomic.js";
import { toJsonl } from "../util/jsonl.js";
import { chainPrompt, chainTeacher, DEFAULT_CHAIN, randomChains } from "./chain.js";
import { offlinePreferences } from "./offline.js";
import { DEMO_JUDGE_TEMPLATE, judgeExamples, negativeExamples } from "./self-data.js";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "./task.js";

/** Prompt counts of the demo's splits; every word appears in exactly one split. */
export const DEMO_SPLITS = { sft: 16000, dno: 3000, validation: 100, eval: 200 } as const;
/** Words of the SFT split that also get an offline preference pair (inputs/preferences.jsonl). */
const OFFLINE_PREFERENCES = 1000;
/** SFT files of the self-rewarding rows (written only for a config that names them). */
export const SELF_JUDGE_SFT = "inputs/sft-judge.jsonl";
export const NEGATIVES_SFT = "inputs/sft-negatives.jsonl";

/** The absolute path of a module of the demo (its oracles and metrics), for configs. */
export const demoModule = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

export const DEMO_SFT = {
  data: "inputs/sft.jsonl",
  lr: 3e-3,
  batch_size: 32,
  epochs: 10,
  warmup_steps: 50,
  weight_decay: 0,
};

/** The paper lowers the learning rate in later iterations. */
export const DEMO_TRAIN = { lr: 1.5e-4, batch_size: 16, epochs: 2, warmup_steps: 5, lr_decay: 0.7 };

/** The built-in tasks: word reversal (src/demo/task.ts) and arithmetic chains (src/demo/chain.ts). */
export const DEMO_TASKS = ["reverse", "chain"] as const;
export type DemoTask = (typeof DEMO_TASKS)[number];

/** The demo's run config (before defaults), with `overrides` merged in for `dno compare`'s variants. */
export function demoConfig(
  overrides: Partial<RunConfigInput> = {},
  task: DemoTask = "reverse",
): RunConfigInput {
  if (task === "chain") return chainConfig(overrides);
  const here = demoModule;
  return {
    seed: 1,
    model: {
      from_scratch: {
        hidden_size: 64,
        intermediate_size: 176,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        max_position_embeddings: 48,
      },
    },
    run_dir: ".",
    sft: DEMO_SFT,
    data: {
      prompts: "inputs/prompts.jsonl",
      eval: "inputs/eval.jsonl",
      validation: "inputs/validation.jsonl",
      prompts_per_iteration: DEMO_SPLITS.dno / 3,
    },
    oracle: { kind: "programmatic", module: here("./oracle.js") },
    task_metrics: here("./metrics.js"),
    iterations: 3,
    // Samples at temperature 1: r_t is a win rate against pi_t itself, and every style stays explored.
    sampling: { samples_per_prompt: 5, temperature: 1, top_p: 1, max_new_tokens: 16 },
    pairs: { rule: "win-rate", pairs_per_prompt: 3, replay: [0.3, 0.15] },
    objective: { name: "dno-prct", beta: 0.3 },
    train: DEMO_TRAIN,
    // mixture: also evaluate Algorithm 1's output, the uniform mixture of pi_1..pi_T.
    eval: { samples_per_prompt: 4, temperature: 1, top_p: 1, mixture: true },
    ...overrides,
  };
}

/**
 * The chain task's run: the reversal demo's loop and sizes on the reasoning task. The model has a
 * third layer (arithmetic over positions is harder than reversal).
 */
function chainConfig(overrides: Partial<RunConfigInput>): RunConfigInput {
  return {
    ...demoConfig(),
    model: {
      from_scratch: {
        hidden_size: 64,
        intermediate_size: 176,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        max_position_embeddings: 48,
      },
    },
    oracle: { kind: "programmatic", module: demoModule("./chain-oracle.js") },
    task_metrics: demoModule("./chain-metrics.js"),
    sampling: { samples_per_prompt: 5, temperature: 1, top_p: 1, max_new_tokens: 24 },
    eval: { samples_per_prompt: 4, temperature: 1, top_p: 1 },
    ...overrides,
  };
}

/** Writes the demo's prompt files (teacher gold answers included) and dno.yaml into `dir`. */
export function writeDemoInputs(dir: string, config: RunConfigInput, task: DemoTask = "reverse"): string {
  mkdirSync(join(dir, "inputs"), { recursive: true });
  const seed = config.seed ?? 1;
  const { sft, dno, validation, eval: evalCount } = DEMO_SPLITS;
  const total = sft + dno + validation + evalCount;
  const words = task === "reverse" ? randomWords(seed, total, DEFAULT_TASK) : [];
  const all =
    task === "chain"
      ? randomChains(seed, total, DEFAULT_CHAIN).map((c) => ({
          prompt: chainPrompt(c),
          gold: chainTeacher(c, seed, DEFAULT_CHAIN),
        }))
      : words.map((w) => ({ prompt: promptOf(w), gold: teacherAnswer(w, seed, DEFAULT_TASK) }));
  const rows = (from: number, count: number, name: string) =>
    all.slice(from, from + count).map((r, i) => ({ id: `${name}-${i}`, ...r }));
  const sftRows = rows(0, sft, "sft");
  writeFileAtomic(join(dir, "inputs", "sft.jsonl"), toJsonl(sftRows));
  writeFileAtomic(join(dir, "inputs", "prompts.jsonl"), toJsonl(rows(sft, dno, "p")));
  writeFileAtomic(join(dir, "inputs", "validation.jsonl"), toJsonl(rows(sft + dno, validation, "val")));
  writeFileAtomic(
    join(dir, "inputs", "eval.jsonl"),
    toJsonl(rows(sft + dno + validation, evalCount, "eval")),
  );
  const file = join(dir, "dno.yaml");
  const header = `# the built-in demo (dno demo --task ${task}); resume with: dno run --config ${file}`;
  if (task === "chain") {
    writeFileAtomic(file, `${header}\n${toYaml(config)}`);
    return file;
  }
  // Offline preference data (DICE's first round and replay) on SFT-split words, disjoint from the rest.
  writeFileAtomic(
    join(dir, "inputs", "preferences.jsonl"),
    toJsonl(offlinePreferences(words.slice(0, OFFLINE_PREFERENCES), seed, DEFAULT_TASK)),
  );
  // The self-rewarding rows' seed data: the SFT answers plus judging, or worse-answer, examples.
  if (config.sft?.data === SELF_JUDGE_SFT) {
    const judging = judgeExamples(
      words.slice(OFFLINE_PREFERENCES, 3 * OFFLINE_PREFERENCES),
      seed,
      DEFAULT_TASK,
    );
    writeFileAtomic(join(dir, SELF_JUDGE_SFT), toJsonl([...sftRows, ...judging]));
    writeFileAtomic(join(dir, "inputs", "judge.jinja"), DEMO_JUDGE_TEMPLATE);
  }
  if (config.sft?.data === NEGATIVES_SFT) {
    const negatives = negativeExamples(words.slice(3 * OFFLINE_PREFERENCES, 4 * OFFLINE_PREFERENCES));
    writeFileAtomic(join(dir, NEGATIVES_SFT), toJsonl([...sftRows, ...negatives]));
  }
  writeFileAtomic(file, `${header}\n${toYaml(config)}`);
  return file;
}

/** summary.json, exactly the fields issue 6 names. */
export interface DemoSummary {
  total_seconds: number;
  oracle_calls: number;
  iterations: {
    t: number;
    winrate_vs_prev: number | null;
    winrate_vs_sft: number | null;
    winrate_vs_teacher: number | null;
    exploitability: number | null;
    accuracy: number | null;
    pairs: { teacher_over_student: number; student_over_teacher: number; student_over_student: number };
    seconds: number;
  }[];
  /** The uniform mixture of the iterates pi_1..pi_T (null when not evaluated). */
  mixture: {
    iterates: number;
    winrate_vs_last: number | null;
    winrate_vs_sft: number | null;
    winrate_vs_teacher: number | null;
    exploitability: number | null;
    accuracy: number | null;
  } | null;
  final_weights_sha256: string;
}

/** total_seconds is the run's work time: the sum of its stages' seconds, whatever resumes it took. */
export function demoSummary(result: RunResult): DemoSummary {
  const totalSeconds = Object.values(result.stageSeconds).reduce((a, b) => a + b, 0);
  return {
    total_seconds: round(totalSeconds, 1),
    oracle_calls: result.oracleJudgments,
    // t = 0 is pi_1, the SFT policy, before any DNO iteration: no pairs, no earlier policy to beat.
    iterations: result.evals.map((e) => {
      const composition = result.pairs.find((p) => p.t === e.t)?.composition;
      const stages = e.t === 0 ? ["init", "sft", "eval/0"] : undefined;
      const seconds = Object.entries(result.stageSeconds)
        .filter(([name]) => (stages ? stages.includes(name) : name.startsWith(`${e.t}/`)))
        .reduce((sum, [, v]) => sum + v, 0);
      return {
        t: e.t,
        winrate_vs_prev: round(e.winrate_vs_prev),
        winrate_vs_sft: round(e.winrate_vs_initial),
        winrate_vs_teacher: round(e.winrate_vs_teacher),
        exploitability: round(e.metrics.exploitability ?? null),
        accuracy: round(e.metrics.accuracy ?? null),
        pairs: {
          teacher_over_student: composition?.teacher_over_student ?? 0,
          student_over_teacher: composition?.student_over_teacher ?? 0,
          student_over_student: composition?.student_over_student ?? 0,
        },
        seconds: round(seconds, 1),
      };
    }),
    mixture: result.mixture && {
      iterates: result.mixture.iterates,
      winrate_vs_last: round(result.mixture.winrate_vs_prev),
      winrate_vs_sft: round(result.mixture.winrate_vs_initial),
      winrate_vs_teacher: round(result.mixture.winrate_vs_teacher),
      exploitability: round(result.mixture.metrics.exploitability ?? null),
      accuracy: round(result.mixture.metrics.accuracy ?? null),
    },
    final_weights_sha256: result.finalWeightsSha256,
  };
}

function round(x: number, digits?: number): number;
function round(x: number | null, digits?: number): number | null;
function round(x: number | null, digits = 4): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface DemoOptions {
  out: string;
  task?: DemoTask;
  overrides?: Partial<RunConfigInput>;
  progress?: ProgressFn;
  events?: StageEvents;
  warn?: RunOptions["warn"];
}

/** Runs (or resumes) the demo with `out` as its run directory; writes summary.json there. */
export async function runDemo(options: DemoOptions): Promise<{ summary: DemoSummary; result: RunResult }> {
  const file = join(options.out, "dno.yaml");
  const task = options.task ?? "reverse";
  if (!existsSync(file)) writeDemoInputs(options.out, demoConfig(options.overrides, task), task);
  const config = loadRunConfig(file);
  const result = await runPipeline({
    config,
    ...(options.progress && { progress: options.progress }),
    ...(options.events && { events: options.events }),
    ...(options.warn && { warn: options.warn }),
  });
  const summary = demoSummary(result);
  writeFileAtomic(join(options.out, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  return { summary, result };
}
