import { createHash } from "node:crypto";
import { basename, extname } from "node:path";
import { SingleBar } from "cli-progress";
import {
  type ArenaAnswer,
  type ArenaJudgment,
  answerFromText,
  arenaPromptFromConfig,
  defaultArenaPrompt,
  readArenaAnswers,
  readArenaJudgments,
  readArenaQuestions,
  type StyleControl,
} from "../../eval/arena-hard.js";
import {
  type Answerer,
  type ArenaResult,
  arenaHardResult,
  judgeArenaHard,
  mtBenchAnswers,
  runMtBench,
  sameLengthUnit,
} from "../../eval/benchmark-run.js";
import type { JudgePrompt } from "../../eval/judge-prompts.js";
import {
  answersFor,
  defaultMtBenchPrompts,
  gradesFromJudgments,
  type MeanWithError,
  type MtBenchSummary,
  readModelAnswers,
  readMtBenchJudgments,
  readMtBenchPrompts,
  readMtBenchQuestions,
  referencesFor,
  summarizeMtBench,
  toFastChatJudgment,
} from "../../eval/mt-bench.js";
import { answerConversations } from "../../model/conversation.js";
import { CausalLM } from "../../model/model.js";
import { loadTokenizer } from "../../model/tokenizer.js";
import {
  configBaseDir,
  createOracle,
  loadOracleConfigFile,
  type Oracle,
  type OracleConfig,
} from "../../oracle/index.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { readYamlFile } from "../../util/files.js";
import { toJsonl } from "../../util/jsonl.js";

/** The `dno eval` flags the benchmarks read. */
export interface BenchmarkOptions {
  answers?: string;
  model?: string;
  baseline?: string;
  oracle?: string;
  judgePrompts?: string;
  references?: string;
  judgments?: string;
  judgmentsOut?: string;
  responsesOut?: string;
  judgedModel?: string;
  styleControl?: StyleControl | true;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  /** Bootstrap rounds for Arena-Hard's interval. */
  rounds: number;
  json?: boolean;
}

function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {value}/{total} {eta_formatted}`,
  });
  bar.start(total, 0);
  return bar;
}

const nameOf = (path: string): string => basename(path, extname(path));
const answerId = (model: string, question: string): string =>
  createHash("sha256").update(`${model}\u0000${question}`).digest("base64url").slice(0, 22);

/** The judge: an oracle that answers benchmark prompts in words; its name for judgment files. */
async function benchmarkJudge(options: BenchmarkOptions): Promise<{ oracle: Oracle; name: string }> {
  if (!options.oracle) throw new DnoError("dno eval: give --oracle CONFIG (the judge), or --judgments FILE");
  const config: OracleConfig = loadOracleConfigFile(options.oracle);
  const oracle = await createOracle(config, { baseDir: configBaseDir(options.oracle) });
  if (!oracle.ask) {
    oracle.close();
    throw new DnoError(
      `${options.oracle}: a ${config.kind} oracle cannot answer a benchmark's judge prompt; ` +
        "use kind llm-judge, or a programmatic module exporting judge(system, messages)",
    );
  }
  return {
    oracle,
    name: config.kind === "llm-judge" ? config.model : `${config.kind}:${nameOf(options.oracle)}`,
  };
}

function usageLine(oracle: Oracle): string {
  const u = oracle.usage();
  return `oracle: ${u.calls} calls, ${u.cacheHits} from the cache, ${u.failures} failures${u.budgetExhausted ? ", budget exhausted" : ""}`;
}

// ---- MT-Bench ---------------------------------------------------------------------------------------

function meanText(m: MeanWithError): string {
  if (m.mean === null) return "n/a";
  return `${m.mean.toFixed(2)} ± ${m.se === null ? "n/a" : m.se.toFixed(2)}  (n = ${m.n})`;
}

function printMtBench(summary: MtBenchSummary, heading: string, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ["turn 1", meanText(summary.turn1)],
    ["turn 2", meanText(summary.turn2)],
    ["overall", meanText(summary.overall)],
    ...Object.entries(summary.categories).map(([c, m]): [string, string] => [`  ${c}`, meanText(m)]),
    ["failed judgments", String(summary.failed)],
  ];
  process.stdout.write(
    `${heading}\n${rows.map(([k, v]) => `${k.padEnd(18)}${v}`).join("\n")}\nscores are 1-10 means ± standard error\n`,
  );
}

/** A checkpoint answering, with a progress bar on stderr per batch of conversations. */
function answererFor(dir: string, options: BenchmarkOptions): Answerer {
  const model = CausalLM.load(dir);
  const tokenizer = loadTokenizer(dir);
  return async (conversations, temperature, label) => {
    const bar = progress(`generating ${label}`, conversations.length);
    try {
      return await answerConversations(model, tokenizer, conversations, {
        temperature,
        topP: options.topP,
        maxNewTokens: options.maxNewTokens,
        seed: options.seed,
        onProgress: (done) => bar.update(done),
      });
    } finally {
      bar.stop();
    }
  };
}

/** The judgments of one model from a file that may hold several. */
function oneModel<T extends { model: string }>(
  rows: T[],
  options: BenchmarkOptions,
  file: string,
): { model: string; rows: T[] } {
  const models = [...new Set(rows.map((j) => j.model))];
  const model = options.judgedModel ?? (models.length === 1 ? models[0]! : undefined);
  if (model === undefined)
    throw new DnoError(
      `${file}: judgments of several models (${models.join(", ")}); pick one with --judged-model NAME`,
    );
  const mine = rows.filter((j) => j.model === model);
  if (mine.length === 0) throw new DnoError(`${file}: no judgments of model ${model}`);
  return { model, rows: mine };
}

export async function evalMtBench(file: string, options: BenchmarkOptions): Promise<void> {
  const questions = readMtBenchQuestions(file);
  if (options.judgments) {
    const { model, rows } = oneModel(readMtBenchJudgments(options.judgments), options, options.judgments);
    const summary = summarizeMtBench(gradesFromJudgments(rows, questions, options.judgments));
    return printMtBench(
      summary,
      `MT-Bench: ${model}, ${rows.length} judgments from ${options.judgments}`,
      options.json,
    );
  }
  if (Boolean(options.answers) === Boolean(options.model))
    throw new DnoError(
      "dno eval --mt-bench: give the model's answers (--answers FILE) or a checkpoint (--model DIR)",
    );
  const prompts = options.judgePrompts ? readMtBenchPrompts(options.judgePrompts) : defaultMtBenchPrompts;
  const references = options.references ? readModelAnswers(options.references) : undefined;
  const refs = referencesFor(questions, references, options.references ?? file);
  const { oracle, name: judgeName } = await benchmarkJudge(options);
  const modelName = options.judgedModel ?? nameOf(options.answers ?? options.model!);
  try {
    const answers = options.answers
      ? answersFor(questions, readModelAnswers(options.answers), options.answers)
      : await mtBenchAnswers(questions, answererFor(options.model!, options));
    if (options.responsesOut)
      writeFileAtomic(
        options.responsesOut,
        toJsonl(
          questions.map((q, i) => ({
            question_id: q.question_id,
            answer_id: answerId(modelName, String(q.question_id)),
            model_id: modelName,
            choices: [{ index: 0, turns: answers[i]!.slice(0, q.turns.length) }],
            tstamp: Date.now() / 1000,
          })),
        ),
      );
    const bar = progress(
      "judging",
      questions.reduce((n, q) => n + q.turns.length, 0),
    );
    let run: Awaited<ReturnType<typeof runMtBench>>;
    try {
      run = await runMtBench(questions, answers, refs, oracle.ask!, prompts, () => bar.increment());
    } finally {
      bar.stop();
    }
    const { grades, summary } = run;
    if (options.judgmentsOut)
      writeFileAtomic(
        options.judgmentsOut,
        toJsonl(grades.map((g) => toFastChatJudgment(g, modelName, judgeName))),
      );
    printMtBench(
      summary,
      `MT-Bench: ${modelName}, ${questions.length} questions, judge ${judgeName}`,
      options.json,
    );
    if (!options.json) process.stdout.write(`${usageLine(oracle)}\n`);
    const firstFailure = grades.find((g) => g.failed);
    if (firstFailure)
      process.stderr.write(
        `dno: warning: ${summary.failed} judgments failed and are not scored (first: question ${firstFailure.questionId} turn ${firstFailure.turn}: ${firstFailure.failed})\n`,
      );
  } finally {
    oracle.close();
  }
}

// ---- Arena-Hard -------------------------------------------------------------------------------------

function printArena(result: ArenaResult, heading: string, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const r = result;
  const fit = r.style_control ? `Bradley-Terry with ${r.style_control} control` : "Bradley-Terry";
  process.stdout.write(
    `${heading}\n` +
      `win rate vs baseline   ${r.win_rate.toFixed(1)}%  (95% CI ${r.ci[0].toFixed(1)} to ${r.ci[1].toFixed(1)}, ${fit})\n` +
      `battles                ${r.battles} from ${r.questions} questions (strong verdicts count 3)\n` +
      `failed games           ${r.failed}\n` +
      (r.style_coefficients
        ? `style coefficients     ${r.style_coefficients.map((c) => c.toFixed(3)).join(", ")} (${r.style_control}; baseline minus model)\n`
        : ""),
  );
}

function sideAnswer(answers: Map<string, ArenaAnswer>, id: string, file: string): ArenaAnswer {
  const a = answers.get(id);
  if (!a) throw new DnoError(`${file}: no answer to question ${id}`);
  return a;
}

const controlOf = (options: BenchmarkOptions): StyleControl | undefined =>
  options.styleControl === true ? "style" : options.styleControl;

export async function evalArenaHard(file: string, opts: BenchmarkOptions): Promise<void> {
  const questions = readArenaQuestions(file);
  const fitOptions = { control: controlOf(opts), rounds: opts.rounds, seed: opts.seed };
  if (opts.judgments) {
    const asked = new Set(questions.map((q) => q.id));
    const { model, rows } = oneModel(
      readArenaJudgments(opts.judgments).filter((j) => asked.has(j.questionId)),
      opts,
      opts.judgments,
    );
    if (opts.styleControl && !(opts.answers && opts.baseline))
      throw new DnoError("dno eval --arena-hard: style control needs --answers and --baseline (their style)");
    let judged: { scores: (typeof rows)[number]["scores"]; model?: ArenaAnswer; baseline?: ArenaAnswer }[] =
      rows.map((j) => ({ scores: j.scores }));
    if (opts.styleControl) {
      const modelFile = readArenaAnswers(opts.answers!);
      const baselineFile = readArenaAnswers(opts.baseline!);
      const m = rows.map((j) => sideAnswer(modelFile, j.questionId, opts.answers!));
      const b = rows.map((j) => sideAnswer(baselineFile, j.questionId, opts.baseline!));
      sameLengthUnit(m, b);
      judged = rows.map((j, i) => ({ scores: j.scores, model: m[i]!, baseline: b[i]! }));
    }
    return printArena(
      arenaHardResult(judged, fitOptions),
      `Arena-Hard: ${model}, ${rows.length} judgments from ${opts.judgments}`,
      opts.json,
    );
  }
  if (!opts.baseline)
    throw new DnoError("dno eval --arena-hard: give the baseline's answers (--baseline FILE)");
  if (Boolean(opts.answers) === Boolean(opts.model))
    throw new DnoError(
      "dno eval --arena-hard: give the model's answers (--answers FILE) or a checkpoint (--model DIR)",
    );
  const baselineFile = readArenaAnswers(opts.baseline);
  const baseline = questions.map((q) => sideAnswer(baselineFile, q.id, opts.baseline!));
  const prompt: JudgePrompt = opts.judgePrompts
    ? arenaPromptFromConfig(readYamlFile(opts.judgePrompts), opts.judgePrompts)
    : defaultArenaPrompt;
  const { oracle, name: judgeName } = await benchmarkJudge(opts);
  const modelName = opts.judgedModel ?? nameOf(opts.answers ?? opts.model!);
  try {
    let model: ArenaAnswer[];
    if (opts.answers) {
      const answers = readArenaAnswers(opts.answers);
      model = questions.map((q) => sideAnswer(answers, q.id, opts.answers!));
    } else {
      const answer = answererFor(opts.model!, opts);
      const texts = await answer(
        questions.map((q) => [{ role: "user", content: q.prompt }]),
        opts.temperature,
        "answers",
      );
      model = texts.map(answerFromText);
      if (opts.responsesOut)
        writeFileAtomic(
          opts.responsesOut,
          toJsonl(
            questions.map((q, i) => ({
              question_id: q.id,
              answer_id: answerId(modelName, q.id),
              model_id: modelName,
              choices: [{ index: 0, turns: [{ content: texts[i]! }] }],
              tstamp: Date.now() / 1000,
            })),
          ),
        );
    }
    sameLengthUnit(model, baseline);
    const bar = progress("judging (2 games each)", questions.length);
    let games: Awaited<ReturnType<typeof judgeArenaHard>>;
    try {
      games = await judgeArenaHard(questions, model, baseline, oracle.ask!, prompt, () => bar.increment());
    } finally {
      bar.stop();
    }
    if (opts.judgmentsOut) {
      const records: ArenaJudgment[] = questions.map((q, i) => ({
        question_id: q.id,
        model: modelName,
        judge: judgeName,
        games: games[i]!.map((g) => ({ user_prompt: g.userPrompt, judgment: g.judgment, score: g.score })),
      }));
      writeFileAtomic(opts.judgmentsOut, toJsonl(records));
    }
    const result = arenaHardResult(
      games.map((pair, i) => ({
        scores: pair.map((g) => g.score),
        baseline: baseline[i]!,
        model: model[i]!,
      })),
      fitOptions,
    );
    printArena(
      result,
      `Arena-Hard: ${modelName} vs ${nameOf(opts.baseline)}, ${questions.length} questions, judge ${judgeName}`,
      opts.json,
    );
    if (!opts.json) process.stdout.write(`${usageLine(oracle)}\n`);
    const firstFailure = games.flat().find((g) => g.failed);
    if (firstFailure)
      process.stderr.write(
        `dno: warning: ${result.failed} games failed and are left out (first: ${firstFailure.failed})\n`,
      );
  } finally {
    oracle.close();
  }
}
