import { createHash } from "node:crypto";
import { basename, extname } from "node:path";
import { SingleBar } from "cli-progress";
import {
  type ArenaAnswer,
  type ArenaGame,
  type ArenaJudgment,
  answerFromText,
  arenaBattles,
  arenaPromptFromConfig,
  defaultArenaPrompt,
  judgeGame,
  readArenaAnswers,
  readArenaJudgments,
  readArenaQuestions,
  type StyleControl,
  styleDifferences,
  styleDims,
  type Verdict,
} from "../../eval/arena-hard.js";
import { bootstrapWinRate } from "../../eval/bradley-terry.js";
import type { JudgePrompt } from "../../eval/judge-prompts.js";
import {
  answersFor,
  defaultMtBenchPrompts,
  gradeMtBench,
  gradesFromJudgments,
  type MeanWithError,
  type MtBenchQuestion,
  type MtBenchSummary,
  readModelAnswers,
  readMtBenchJudgments,
  readMtBenchPrompts,
  readMtBenchQuestions,
  referencesFor,
  summarizeMtBench,
  toFastChatJudgment,
} from "../../eval/mt-bench.js";
import { CausalLM } from "../../model/model.js";
import { type ChatMessage, encodeConversation, loadTokenizer } from "../../model/tokenizer.js";
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

/** FastChat's sampling temperature per MT-Bench category (0.7 for any other). */
const MT_BENCH_TEMPERATURE: Record<string, number> = {
  writing: 0.7,
  roleplay: 0.7,
  extraction: 0,
  math: 0,
  coding: 0,
  reasoning: 0,
  stem: 0.1,
  humanities: 0.1,
  "arena-hard-200": 0,
};

function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {value}/{total} {eta_formatted}`,
  });
  bar.start(total, 0);
  return bar;
}

/** One answer per conversation from a checkpoint, with the given temperature; whitespace trimmed as FastChat does. */
async function generateAnswers(
  model: CausalLM,
  tokenizer: ReturnType<typeof loadTokenizer>,
  conversations: readonly ChatMessage[][],
  temperature: number,
  options: BenchmarkOptions,
  label: string,
): Promise<string[]> {
  if (conversations.length === 0) return [];
  const bar = progress(label, conversations.length);
  try {
    const samples = await model.generate(
      conversations.map((c) => encodeConversation(tokenizer, c)),
      {
        samplesPerPrompt: 1,
        temperature,
        topP: options.topP,
        maxNewTokens: options.maxNewTokens,
        eosTokenIds: [...new Set([...tokenizer.eosTokenIds, ...model.config.eosTokenIds])],
        seed: options.seed,
        tokenizer,
        onProgress: (done) => bar.update(done),
      },
    );
    return samples.map((s) => s[0]!.text!.trim());
  } finally {
    bar.stop();
  }
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

/** Both turns of every question from a checkpoint, turn 2 conditioned on its own turn-1 answer. */
async function generateMtBenchAnswers(
  dir: string,
  questions: readonly MtBenchQuestion[],
  options: BenchmarkOptions,
) {
  const model = CausalLM.load(dir);
  const tokenizer = loadTokenizer(dir);
  const answers: string[][] = questions.map(() => []);
  const temperatureOf = (q: MtBenchQuestion) => MT_BENCH_TEMPERATURE[q.category] ?? 0.7;
  for (const turn of [0, 1]) {
    const byTemperature = new Map<number, number[]>();
    questions.forEach((q, i) => {
      if (turn < q.turns.length)
        byTemperature.set(temperatureOf(q), [...(byTemperature.get(temperatureOf(q)) ?? []), i]);
    });
    for (const [temperature, indices] of byTemperature) {
      const conversations = indices.map((i) => {
        const q = questions[i]!;
        const messages: ChatMessage[] = [{ role: "user", content: q.turns[0]! }];
        if (turn === 1)
          messages.push(
            { role: "assistant", content: answers[i]![0]! },
            { role: "user", content: q.turns[1]! },
          );
        return messages;
      });
      const texts = await generateAnswers(
        model,
        tokenizer,
        conversations,
        temperature,
        options,
        `turn ${turn + 1} (T=${temperature})`,
      );
      indices.forEach((i, k) => {
        answers[i]!.push(texts[k]!);
      });
    }
  }
  return answers;
}

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

export async function evalMtBench(file: string, options: BenchmarkOptions): Promise<void> {
  const questions = readMtBenchQuestions(file);
  if (options.judgments) {
    const all = readMtBenchJudgments(options.judgments);
    const models = [...new Set(all.map((j) => j.model))];
    const model = options.judgedModel ?? (models.length === 1 ? models[0]! : undefined);
    if (model === undefined)
      throw new DnoError(
        `${options.judgments}: judgments of several models (${models.join(", ")}); pick one with --judged-model NAME`,
      );
    const mine = all.filter((j) => j.model === model);
    if (mine.length === 0) throw new DnoError(`${options.judgments}: no judgments of model ${model}`);
    const summary = summarizeMtBench(gradesFromJudgments(mine, questions, options.judgments));
    return printMtBench(
      summary,
      `MT-Bench: ${model}, ${mine.length} judgments from ${options.judgments}`,
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
  let summary: MtBenchSummary;
  try {
    const answers = options.answers
      ? answersFor(questions, readModelAnswers(options.answers), options.answers)
      : await generateMtBenchAnswers(options.model!, questions, options);
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
    const turns = questions.reduce((n, q) => n + q.turns.length, 0);
    const bar = progress("judging", turns);
    let grades: Awaited<ReturnType<typeof gradeMtBench>>;
    try {
      grades = await gradeMtBench(questions, answers, refs, oracle.ask!, prompts, () => bar.increment());
    } finally {
      bar.stop();
    }
    if (options.judgmentsOut)
      writeFileAtomic(
        options.judgmentsOut,
        toJsonl(grades.map((g) => toFastChatJudgment(g, modelName, judgeName))),
      );
    summary = summarizeMtBench(grades);
    const firstFailure = grades.find((g) => g.failed);
    printMtBench(
      summary,
      `MT-Bench: ${modelName}, ${questions.length} questions, judge ${judgeName}`,
      options.json,
    );
    if (!options.json) process.stdout.write(`${usageLine(oracle)}\n`);
    if (firstFailure)
      process.stderr.write(
        `dno: warning: ${summary.failed} judgments failed and are not scored (first: question ${firstFailure.questionId} turn ${firstFailure.turn}: ${firstFailure.failed})\n`,
      );
  } finally {
    oracle.close();
  }
}

// ---- Arena-Hard -------------------------------------------------------------------------------------

interface ArenaResult {
  win_rate: number;
  ci: [number, number];
  failed: number;
  questions: number;
  battles: number;
  style_control: StyleControl | null;
  style_coefficients: number[] | null;
}

function arenaResult(
  judged: { scores: (Verdict | null)[]; baseline?: ArenaAnswer; model?: ArenaAnswer }[],
  options: BenchmarkOptions,
): ArenaResult {
  const control = options.styleControl === true ? "style" : options.styleControl;
  const withStyle = judged.map((j) => ({
    scores: j.scores,
    ...(control &&
      j.baseline &&
      j.model && { style: styleDifferences(j.baseline.style, j.model.style, control) }),
  }));
  const battles = arenaBattles(withStyle, control);
  const failed = judged.reduce((n, j) => n + j.scores.filter((s) => s === null).length, 0);
  if (battles.length === 0) throw new DnoError("Arena-Hard: every game failed; no battle to fit");
  // Player 0 is the baseline (arena-hard's model_a), player 1 the model.
  const fit = bootstrapWinRate(battles, 2, 1, 0, {
    rounds: options.rounds,
    seed: options.seed,
    ...(control && { styleDims: styleDims(control) }),
  });
  return {
    win_rate: fit.winRate * 100,
    ci: [fit.ci[0] * 100, fit.ci[1] * 100],
    failed,
    questions: judged.length,
    battles: battles.length,
    style_control: control ?? null,
    style_coefficients: control ? fit.style : null,
  };
}

function printArena(result: ArenaResult, heading: string, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const r = result;
  process.stdout.write(
    `${heading}\n` +
      `win rate vs baseline   ${r.win_rate.toFixed(1)}%  (95% CI ${r.ci[0].toFixed(1)} to ${r.ci[1].toFixed(1)}, ${options(r)})\n` +
      `battles                ${r.battles} from ${r.questions} questions (strong verdicts count 3)\n` +
      `failed games           ${r.failed}\n` +
      (r.style_coefficients
        ? `style coefficients     ${r.style_coefficients.map((c) => c.toFixed(3)).join(", ")} (${r.style_control}; baseline minus model)\n`
        : ""),
  );
}

const options = (r: ArenaResult): string =>
  r.style_control ? `Bradley-Terry with ${r.style_control} control` : "Bradley-Terry";

function arenaPrompt(file: string | undefined): JudgePrompt {
  return file ? arenaPromptFromConfig(readYamlFile(file), file) : defaultArenaPrompt;
}

export async function evalArenaHard(file: string, opts: BenchmarkOptions): Promise<void> {
  const questions = readArenaQuestions(file);
  if (opts.judgments) {
    const all = readArenaJudgments(opts.judgments);
    const models = [...new Set(all.map((j) => j.model))];
    const model = opts.judgedModel ?? (models.length === 1 ? models[0]! : undefined);
    if (model === undefined)
      throw new DnoError(
        `${opts.judgments}: judgments of several models (${models.join(", ")}); pick one with --judged-model NAME`,
      );
    const asked = new Set(questions.map((q) => q.id));
    const mine = all.filter((j) => j.model === model && asked.has(j.questionId));
    if (mine.length === 0)
      throw new DnoError(`${opts.judgments}: no judgments of ${model} on the questions of ${file}`);
    if (opts.styleControl && !(opts.answers && opts.baseline))
      throw new DnoError("dno eval --arena-hard: style control needs --answers and --baseline (their style)");
    const styleSides = opts.styleControl
      ? { model: readArenaAnswers(opts.answers!), baseline: readArenaAnswers(opts.baseline!) }
      : undefined;
    const judged = mine.map((j) => ({
      scores: j.scores,
      ...(styleSides && {
        model: sideAnswer(styleSides.model, j.questionId, opts.answers!),
        baseline: sideAnswer(styleSides.baseline, j.questionId, opts.baseline!),
      }),
    }));
    return printArena(
      arenaResult(judged, opts),
      `Arena-Hard: ${model}, ${mine.length} judgments from ${opts.judgments}`,
      opts.json,
    );
  }
  if (!opts.baseline)
    throw new DnoError("dno eval --arena-hard: give the baseline's answers (--baseline FILE)");
  if (Boolean(opts.answers) === Boolean(opts.model))
    throw new DnoError(
      "dno eval --arena-hard: give the model's answers (--answers FILE) or a checkpoint (--model DIR)",
    );
  const baseline = readArenaAnswers(opts.baseline);
  const baselineAnswers = questions.map((q) => sideAnswer(baseline, q.id, opts.baseline!));
  const prompt = arenaPrompt(opts.judgePrompts);
  const { oracle, name: judgeName } = await benchmarkJudge(opts);
  const modelName = opts.judgedModel ?? nameOf(opts.answers ?? opts.model!);
  try {
    let modelAnswers: ArenaAnswer[];
    if (opts.answers) {
      const answers = readArenaAnswers(opts.answers);
      modelAnswers = questions.map((q) => sideAnswer(answers, q.id, opts.answers!));
    } else {
      const model = CausalLM.load(opts.model!);
      const tokenizer = loadTokenizer(opts.model!);
      const texts = await generateAnswers(
        model,
        tokenizer,
        questions.map((q) => [{ role: "user", content: q.prompt }]),
        opts.temperature,
        opts,
        "generating",
      );
      modelAnswers = texts.map(answerFromText);
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
    // Mixed units would make the length feature meaningless: characters for both unless both have tokens.
    const sameUnit = modelAnswers.every(
      (a, i) => a.style.lengthUnit === baselineAnswers[i]!.style.lengthUnit,
    );
    if (!sameUnit) {
      modelAnswers = modelAnswers.map((a) => ({ ...a, style: { ...answerFromText(a.text).style } }));
      baselineAnswers.forEach((a, i) => {
        baselineAnswers[i] = { ...a, style: answerFromText(a.text).style };
      });
    }
    const bar = progress("judging", questions.length * 2);
    let games: ArenaGame[][];
    try {
      games = await Promise.all(
        questions.map((q, i) =>
          Promise.all([
            judgeGame(oracle.ask!, prompt, q.prompt, baselineAnswers[i]!.text, modelAnswers[i]!.text),
            judgeGame(oracle.ask!, prompt, q.prompt, modelAnswers[i]!.text, baselineAnswers[i]!.text),
          ]).then((pair) => {
            bar.increment(2);
            return pair;
          }),
        ),
      );
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
    const result = arenaResult(
      games.map((pair, i) => ({
        scores: pair.map((g) => g.score),
        baseline: baselineAnswers[i]!,
        model: modelAnswers[i]!,
      })),
      opts,
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

function sideAnswer(answers: Map<string, ArenaAnswer>, id: string, file: string): ArenaAnswer {
  const a = answers.get(id);
  if (!a) throw new DnoError(`${file}: no answer to question ${id}`);
  return a;
}
