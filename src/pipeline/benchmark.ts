/**
 * `eval.benchmark`: MT-Bench or Arena-Hard on every policy of a run (pi_1 .. pi_{T+1}), after each
 * evaluation. Each iteration writes its answers and judgments in the benchmark's own formats beside a
 * `benchmark.json` result, and the run keeps `benchmark.jsonl` (one line per iteration) for the report.
 */
import { join } from "node:path";
import { z } from "zod";
import { deriveSeed } from "../core/rng.js";
import {
  answerFromText,
  arenaPromptFromConfig,
  defaultArenaPrompt,
  readArenaAnswers,
  readArenaQuestions,
} from "../eval/arena-hard.js";
import {
  arenaHardResult,
  judgeArenaHard,
  mtBenchAnswers,
  runMtBench,
  sameLengthUnit,
} from "../eval/benchmark-run.js";
import {
  defaultMtBenchPrompts,
  readModelAnswers,
  readMtBenchPrompts,
  readMtBenchQuestions,
  referencesFor,
  toFastChatJudgment,
} from "../eval/mt-bench.js";
import {
  configBaseDir,
  createOracle,
  loadOracleConfigFile,
  type Oracle,
  type OracleConfig,
} from "../oracle/index.js";
import { DnoError } from "../util/errors.js";
import { readYamlFile } from "../util/files.js";
import { iterDir, policyPath } from "./paths.js";
import { loadPolicy, policyAnswerer } from "./policy.js";
import { writeJsonAt, writeJsonlAt } from "./stages.js";

export const benchmarkConfigSchema = z.strictObject({
  kind: z.enum(["mt-bench", "arena-hard"]),
  /** The benchmark's question.jsonl (FastChat's or arena-hard-auto's format). */
  questions: z.string().min(1),
  /** Arena-Hard: the baseline's answers (arena-hard-auto model_answer format). */
  baseline: z.string().min(1).optional(),
  /** MT-Bench: reference answers (FastChat model_answer format) when the questions carry none. */
  references: z.string().min(1).optional(),
  /** FastChat judge_prompts.jsonl or an arena-hard-auto judge config; dno's own prompts otherwise. */
  judge_prompts: z.string().min(1).optional(),
  /** An oracle config file for the judge; the run's `oracle` when omitted. */
  oracle: z.string().min(1).optional(),
  /** Arena-Hard: sampling temperature of the answers (arena-hard-auto uses 0). */
  temperature: z.number().min(0).default(0),
  /** Arena-Hard: control the Bradley-Terry fit for style. */
  style_control: z.enum(["style", "length", "markdown"]).optional(),
  /** Arena-Hard: bootstrap rounds of the interval. */
  rounds: z.number().int().positive().default(100),
});
export type BenchmarkConfig = z.infer<typeof benchmarkConfigSchema>;

/** `f` applied to every file a benchmark config names (`field`: its key), as `mapConfigPaths` does. */
export function mapBenchmarkPaths(b: BenchmarkConfig, f: (path: string, field: string) => string): void {
  b.questions = f(b.questions, "questions");
  if (b.baseline) b.baseline = f(b.baseline, "baseline");
  if (b.references) b.references = f(b.references, "references");
  if (b.judge_prompts) b.judge_prompts = f(b.judge_prompts, "judge_prompts");
  if (b.oracle) b.oracle = f(b.oracle, "oracle");
}

/** One policy's benchmark result: its score with a 95% interval (MT-Bench: mean ± 1.96 SE, 1-10). */
export interface BenchmarkResult {
  t: number;
  kind: BenchmarkConfig["kind"];
  score: number;
  low: number | null;
  high: number | null;
  failed: number;
  detail: unknown;
}

async function openJudge(b: BenchmarkConfig, runOracle: OracleConfig, runDir: string): Promise<Oracle> {
  const oracle = b.oracle
    ? await createOracle(loadOracleConfigFile(b.oracle), { baseDir: configBaseDir(b.oracle) })
    : runOracle.kind === "ensemble"
      ? undefined
      : await createOracle(runOracle, { baseDir: runDir });
  if (!oracle?.ask) {
    oracle?.close();
    throw new DnoError(
      `eval.benchmark: ${b.oracle ?? "the run's oracle"} cannot answer the benchmark's judge prompts; ` +
        "set eval.benchmark.oracle to an llm-judge config or a programmatic module exporting judge()",
    );
  }
  return oracle;
}

export interface BenchmarkStageInput {
  benchmark: BenchmarkConfig;
  oracle: OracleConfig;
  runDir: string;
  seed: number;
  maxNewTokens: number;
  topP: number;
  progress: (stage: string, done: number, total: number) => void;
}

/** Runs the benchmark on pi_{t+1} (pi_1 for t = 0) and writes its files under iterations/t. */
export async function benchmarkStage(input: BenchmarkStageInput, t: number): Promise<BenchmarkResult> {
  const { benchmark: b, runDir } = input;
  const policy = loadPolicy(join(runDir, policyPath(t + 1)));
  const answer = policyAnswerer(
    policy,
    { topP: input.topP, maxNewTokens: input.maxNewTokens, seed: deriveSeed(input.seed, "benchmark", t) },
    (label, done, total) => input.progress(`${t}/benchmark ${label}`, done, total),
  );
  const judge = await openJudge(b, input.oracle, runDir);
  const name = `pi_${t + 1}`;
  try {
    if (b.kind === "mt-bench") {
      const questions = readMtBenchQuestions(b.questions);
      const refs = referencesFor(
        questions,
        b.references ? readModelAnswers(b.references) : undefined,
        b.questions,
      );
      const prompts = b.judge_prompts ? readMtBenchPrompts(b.judge_prompts) : defaultMtBenchPrompts;
      const answers = await mtBenchAnswers(questions, answer);
      writeJsonlAt(
        runDir,
        `${iterDir(t)}/benchmark-answers.jsonl`,
        questions.map((q, i) => ({
          question_id: q.question_id,
          model_id: name,
          choices: [{ index: 0, turns: answers[i] }],
        })),
      );
      const { grades, summary } = await runMtBench(questions, answers, refs, judge.ask!, prompts);
      writeJsonlAt(
        runDir,
        `${iterDir(t)}/benchmark-judgments.jsonl`,
        grades.map((g) => toFastChatJudgment(g, name, "eval.benchmark judge")),
      );
      const m = summary.overall;
      const result: BenchmarkResult = {
        t,
        kind: b.kind,
        score: m.mean ?? Number.NaN,
        low: m.mean !== null && m.se !== null ? m.mean - 1.96 * m.se : null,
        high: m.mean !== null && m.se !== null ? m.mean + 1.96 * m.se : null,
        failed: summary.failed,
        detail: summary,
      };
      writeJsonAt(runDir, `${iterDir(t)}/benchmark.json`, result);
      return result;
    }
    if (!b.baseline)
      throw new DnoError("eval.benchmark: kind arena-hard needs baseline (the baseline's answers)");
    const questions = readArenaQuestions(b.questions);
    const baselineFile = readArenaAnswers(b.baseline);
    const baseline = questions.map((q) => {
      const a = baselineFile.get(q.id);
      if (!a) throw new DnoError(`${b.baseline}: no answer to question ${q.id}`);
      return a;
    });
    const texts = await answer(
      questions.map((q) => [{ role: "user", content: q.prompt }]),
      b.temperature,
      "answers",
    );
    const model = texts.map(answerFromText);
    writeJsonlAt(
      runDir,
      `${iterDir(t)}/benchmark-answers.jsonl`,
      questions.map((q, i) => ({
        question_id: q.id,
        model_id: name,
        choices: [{ index: 0, turns: [{ content: texts[i] }] }],
      })),
    );
    sameLengthUnit(model, baseline);
    const prompt = b.judge_prompts
      ? arenaPromptFromConfig(readYamlFile(b.judge_prompts), b.judge_prompts)
      : defaultArenaPrompt;
    const games = await judgeArenaHard(questions, model, baseline, judge.ask!, prompt);
    writeJsonlAt(
      runDir,
      `${iterDir(t)}/benchmark-judgments.jsonl`,
      questions.map((q, i) => ({
        question_id: q.id,
        model: name,
        judge: "eval.benchmark judge",
        games: games[i]!.map((g) => ({ user_prompt: g.userPrompt, judgment: g.judgment, score: g.score })),
      })),
    );
    const arena = arenaHardResult(
      games.map((pair, i) => ({
        scores: pair.map((g) => g.score),
        baseline: baseline[i]!,
        model: model[i]!,
      })),
      { control: b.style_control, rounds: b.rounds, seed: deriveSeed(input.seed, "benchmark-bootstrap", t) },
    );
    const result: BenchmarkResult = {
      t,
      kind: b.kind,
      score: arena.win_rate,
      low: arena.ci[0],
      high: arena.ci[1],
      failed: arena.failed,
      detail: arena,
    };
    writeJsonAt(runDir, `${iterDir(t)}/benchmark.json`, result);
    return result;
  } finally {
    judge.close();
  }
}

/** The outputs of a benchmark stage, relative to the run directory. */
export const benchmarkOutputs = (t: number): string[] => [
  `${iterDir(t)}/benchmark.json`,
  `${iterDir(t)}/benchmark-answers.jsonl`,
  `${iterDir(t)}/benchmark-judgments.jsonl`,
];

export function writeBenchmarks(runDir: string, results: readonly BenchmarkResult[]): void {
  writeJsonlAt(runDir, "benchmark.jsonl", results);
}
