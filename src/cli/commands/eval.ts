import { basename, extname } from "node:path";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import {
  type AlpacaAnnotation,
  alpacaMetrics,
  gamedDifficulty,
  isExtremeLengthCorrection,
  readAlpacaAnnotations,
  readGamedAnnotations,
  readInstructionDifficulty,
} from "../../eval/alpaca.js";
import type { StyleControl } from "../../eval/arena-hard.js";
import { evaluateHeadToHead } from "../../eval/head-to-head.js";
import {
  type LengthControlled,
  type LengthControlOptions,
  lengthControlledInterval,
} from "../../eval/length-controlled.js";
import {
  type EvalPrompt,
  pairResponses,
  type ResponsePair,
  type ResponseRecord,
  readPrompts,
  readResponses,
} from "../../eval/responses.js";
import { charLength } from "../../eval/winrate.js";
import { fitToContext } from "../../model/context.js";
import type { Sample } from "../../model/generate.js";
import { readCheckpointConfig } from "../../model/lora.js";
import { generateMixture } from "../../model/mixture.js";
import { CausalLM } from "../../model/model.js";
import { encodePrompt, loadTokenizer } from "../../model/tokenizer.js";
import {
  configBaseDir,
  createOracle,
  loadOracleConfigFile,
  type Oracle,
  type OracleUsage,
  type PreferenceResult,
} from "../../oracle/index.js";
import { mixtureIterates } from "../../pipeline/paths.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { toJsonl } from "../../util/jsonl.js";
import { intFlag, MAX_SEED, numberFlag } from "../flags.js";
import { type BenchmarkOptions, evalArenaHard, evalMtBench } from "./eval-benchmarks.js";

interface EvalOptions extends Omit<BenchmarkOptions, "rounds"> {
  mtBench?: string;
  arenaHard?: string;
  alpacaAnnotations?: string;
  responses?: string;
  model?: string;
  mixture?: string;
  adapter?: string;
  baseline?: string;
  baselineModel?: string;
  prompts?: string;
  responsesOut?: string;
  baselineOut?: string;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** Whether --max-new-tokens was given (a default one is lowered to fit the context). */
  maxNewTokensGiven?: boolean;
  oracle?: string;
  annotationsOut?: string;
  instructionDifficulty?: string;
  gamedAnnotations?: string;
  seed: number;
  bootstrap: number;
  lcBootstrap: number;
  json?: boolean;
}

/** A number for people: fixed decimals, "n/a" where undefined (NaN, null). */
function show(value: number | null, digits = 2): string {
  return value === null || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

/** JSON has no NaN: undefined statistics (a standard error of one record) become null. */
function jsonLine(object: Record<string, number | null>): string {
  const clean = Object.entries(object).map(([k, v]) => [k, v === null || !Number.isFinite(v) ? null : v]);
  return `${JSON.stringify(Object.fromEntries(clean))}\n`;
}

function ciText([low, high]: [number, number]): string {
  return `95% bootstrap CI ${show(low)} to ${show(high)}`;
}

function table(rows: [string, string][]): string {
  return rows.map(([k, v]) => `${k.padEnd(27)}${v}`).join("\n");
}

function glmLine(lc: LengthControlled | "baseline-is-model" | null): string {
  if (lc === "baseline-is-model") return "length control: the model is its own baseline, LC = 50";
  if (lc === null) return "length control: needs at least 2 judged records";
  const c = lc.coefficients;
  return (
    `length control GLM (C = ${lc.C.toPrecision(3)}): w_length ${c.length.toFixed(4)}, ` +
    (c.difficulty === null ? "no instruction difficulty, " : `w_difficulty ${c.difficulty.toFixed(4)}, `) +
    `w_model ${c.model.toFixed(4)}` +
    (lc.nGamed > 0 ? `, fitted with ${lc.nGamed} gamed-baseline rows` : "")
  );
}

/** Which of AlpacaEval's inputs the LC number used, so nobody mistakes a partial fit for the leaderboard's. */
function lcInputsLine(options: EvalOptions): string {
  if (options.gamedAnnotations)
    return "LC inputs: AlpacaEval's gamed-baseline rows and instruction difficulty (length_controlled_v1, as the leaderboard)";
  if (options.instructionDifficulty)
    return "LC inputs: instruction difficulty, no gamed-baseline rows (length_controlled_noreg; can drift from the leaderboard, see README)";
  return "LC inputs: neither gamed-baseline rows nor instruction difficulty (length_controlled_minimal; can drift far from the leaderboard, see README)";
}

function warnIfExtreme(winRate: number, lc: number | null, nTotal: number): void {
  if (lc !== null && isExtremeLengthCorrection(winRate, lc))
    process.stderr.write(
      `dno: warning: the length-controlled win rate (${show(lc)}) is far from the raw one (${show(winRate)}): ` +
        `length explains much of the result, or the GLM fit on ${nTotal} judgments is unreliable\n`,
    );
}

function difficultyFor(options: EvalOptions, records: number): { instructionDifficulty?: number[] } {
  return options.instructionDifficulty
    ? { instructionDifficulty: readInstructionDifficulty(options.instructionDifficulty, records) }
    : {};
}

/**
 * The LC inputs for an annotation file: with df_gamed.csv, its rows and (as AlpacaEval's fit takes it)
 * its instruction difficulty; a --instruction-difficulty file given too is checked against it.
 */
function alpacaLcInputs(options: EvalOptions, records: number): LengthControlOptions {
  if (!options.gamedAnnotations) return difficultyFor(options, records);
  const gamed = readGamedAnnotations(options.gamedAnnotations);
  const instructionDifficulty = gamedDifficulty(gamed, options.gamedAnnotations, records);
  const csv = difficultyFor(options, records).instructionDifficulty;
  const differs = csv?.findIndex((v, i) => Math.abs(v - instructionDifficulty[i]!) > 1e-9) ?? -1;
  if (differs >= 0)
    process.stderr.write(
      `dno: warning: ${options.instructionDifficulty} and ${options.gamedAnnotations} disagree on the difficulty of ` +
        `instruction ${differs} (${csv![differs]} vs ${instructionDifficulty[differs]}); the fit uses ` +
        `${options.gamedAnnotations}'s, as AlpacaEval's does\n`,
    );
  return { instructionDifficulty, gamedRows: gamed.rows };
}

function evalAlpaca(file: string, options: EvalOptions): void {
  const records = readAlpacaAnnotations(file);
  const lcInputs = alpacaLcInputs(options, records.length);
  const { metrics, lengthControl, headToHead } = alpacaMetrics(records, lcInputs);
  const m = metrics;
  const lcInterval =
    options.json || options.lcBootstrap === 0 || typeof lengthControl !== "object" || lengthControl === null
      ? ""
      : `  (${ciText(
          lengthControlledInterval(headToHead, lengthControl, {
            seed: options.seed,
            resamples: options.lcBootstrap,
            ...lcInputs,
          }).map((x) => x * 100) as [number, number],
        )})`;
  if (options.json) process.stdout.write(jsonLine({ ...metrics }));
  else
    process.stdout.write(
      `${file}: ${records.length} records, ${m.n_total} judged\n${table([
        ["length_controlled_winrate", `${show(m.length_controlled_winrate)}${lcInterval}`],
        ["lc_standard_error", show(m.lc_standard_error)],
        ["win_rate", show(m.win_rate)],
        ["standard_error", show(m.standard_error)],
        ["discrete_win_rate", show(m.discrete_win_rate)],
        ["n_wins", String(m.n_wins)],
        ["n_wins_base", String(m.n_wins_base)],
        ["n_draws", String(m.n_draws)],
        ["n_total", String(m.n_total)],
        ["avg_length", String(m.avg_length)],
      ])}\n${glmLine(lengthControl)}\n${lcInputsLine(options)}\n`,
    );
  warnIfExtreme(m.win_rate, m.length_controlled_winrate, m.n_total);
}

const generatorName = (path: string): string => basename(path, extname(path));

/** A side generated by a checkpoint, or by the uniform mixture of a run's iterates pi_1..pi_T. */
type Generator = { dir: string; adapter?: string } | { mixture: string };

/** Greedy (or sampled, with --temperature) responses of a generator to each prompt, one per prompt. */
async function generateResponses(
  source: Generator,
  prompts: readonly EvalPrompt[],
  options: EvalOptions,
): Promise<ResponseRecord[]> {
  const dirs = "dir" in source ? [source.dir] : mixtureIterates(source.mixture);
  const tokenizer = loadTokenizer(dirs[0]!);
  const { ids, maxNewTokens } = fitToContext(
    prompts.map((p, i) => ({
      where: p.id !== undefined ? `prompt ${JSON.stringify(p.id)}` : `prompt ${i + 1}`,
      ids: encodePrompt(tokenizer, p.prompt),
    })),
    { value: options.maxNewTokens, explicit: options.maxNewTokensGiven === true, name: "--max-new-tokens" },
    readCheckpointConfig(dirs[0]!).maxPositionEmbeddings,
  );
  const bar = new SingleBar({
    stream: process.stderr,
    format: `generating (${basename("dir" in source ? source.dir : `${source.mixture} mixture`)}) [{bar}] {value}/{total} prompts | ETA {eta_formatted}`,
  });
  let samples: Sample[][];
  try {
    bar.start(prompts.length, 0);
    const generateOptions = {
      samplesPerPrompt: 1,
      temperature: options.temperature,
      topP: options.topP,
      maxNewTokens,
      eosTokenIds: [...new Set([...tokenizer.eosTokenIds, ...readCheckpointConfig(dirs[0]!).eosTokenIds])],
      seed: options.seed,
      tokenizer,
      onProgress: (done: number) => bar.update(done),
    };
    samples =
      "dir" in source
        ? await CausalLM.load(source.dir, { adapter: source.adapter }).generate(ids, generateOptions)
        : await generateMixture(dirs.length, (m) => CausalLM.load(dirs[m]!), ids, generateOptions);
  } finally {
    bar.stop();
  }
  return prompts.map((p, i) => ({
    ...(p.id !== undefined && { id: p.id }),
    prompt: p.prompt,
    response: samples[i]![0]!.text!,
  }));
}

/** The prompts to generate for: from --prompts, else from the side given as a responses file. */
function promptsFor(options: EvalOptions): EvalPrompt[] {
  if (options.prompts) return readPrompts(options.prompts);
  if (options.baseline) return readResponses(options.baseline);
  if (options.responses) return readResponses(options.responses);
  throw new DnoError("dno eval: with --model and --baseline-model, give --prompts FILE");
}

/** One side of the comparison: a responses file, or a checkpoint generating for the prompts. */
async function sideResponses(
  file: string | undefined,
  source: Generator | undefined,
  out: string | undefined,
  options: EvalOptions,
): Promise<ResponseRecord[]> {
  if (file) return readResponses(file);
  const generated = await generateResponses(source!, promptsFor(options), options);
  if (out) writeFileAtomic(out, toJsonl(generated));
  return generated;
}

/** P(model beats baseline) for every pair; the oracle bounds its own concurrency. */
async function judgeAll(oracle: Oracle, pairs: readonly ResponsePair[]): Promise<PreferenceResult[]> {
  const bar = new SingleBar({
    stream: process.stderr,
    format: "judging [{bar}] {value}/{total} {eta_formatted}",
  });
  bar.start(pairs.length, 0);
  try {
    return await Promise.all(
      pairs.map(async (p) => {
        const result = await oracle.compare(p.prompt, p.model, p.baseline);
        bar.increment();
        return result;
      }),
    );
  } finally {
    bar.stop();
  }
}

async function evalHeadToHead(options: EvalOptions): Promise<void> {
  const modelName = options.responses ?? options.model ?? options.mixture;
  const baselineName = options.baseline ?? options.baselineModel;
  if ([options.responses, options.model, options.mixture].filter((x) => x !== undefined).length > 1)
    throw new DnoError("dno eval: give one of --responses, --model and --mixture");
  if (options.adapter && !options.model)
    throw new DnoError("dno eval: --adapter applies to --model; give --model DIR");
  if (options.baseline && options.baselineModel)
    throw new DnoError("dno eval: give --baseline or --baseline-model, not both");
  if (!baselineName)
    throw new DnoError("dno eval: give the baseline: --baseline FILE (responses) or --baseline-model DIR");
  if (!options.oracle) throw new DnoError("dno eval: give --oracle CONFIG (a judge config, YAML)");
  if (options.prompts && (options.responses || options.baseline))
    throw new DnoError(
      "dno eval: --prompts is for --model with --baseline-model; otherwise the prompts come from the responses file",
    );
  // The judge is set up first: a bad config or a missing API key fails before any generation.
  const oracle = await createOracle(loadOracleConfigFile(options.oracle), {
    baseDir: configBaseDir(options.oracle),
  });
  let pairs: ResponsePair[];
  let difficulty: { instructionDifficulty?: number[] };
  let judgments: PreferenceResult[];
  let usage: OracleUsage;
  try {
    const modelResponses = await sideResponses(
      options.responses,
      options.mixture !== undefined
        ? { mixture: options.mixture }
        : options.model === undefined
          ? undefined
          : { dir: options.model, adapter: options.adapter },
      options.responsesOut,
      options,
    );
    const samples = Math.max(...modelResponses.map((r) => r.samples ?? 1));
    if (samples > 1)
      process.stderr.write(
        `dno: note: ${modelName} holds up to ${samples} samples per prompt; the first is judged\n`,
      );
    const baselineResponses = await sideResponses(
      options.baseline,
      options.baselineModel === undefined ? undefined : { dir: options.baselineModel },
      options.baselineOut,
      options,
    );
    pairs = pairResponses(modelResponses, baselineResponses, { model: modelName!, baseline: baselineName });
    difficulty = difficultyFor(options, pairs.length);
    judgments = await judgeAll(oracle, pairs);
    usage = oracle.usage();
  } finally {
    oracle.close();
  }
  const records = pairs.map((p, i) => ({
    preference: judgments[i]!.preference,
    modelLength: charLength(p.model),
    baselineLength: charLength(p.baseline),
  }));
  if (options.annotationsOut) {
    const annotations: AlpacaAnnotation[] = pairs.map((p, i) => ({
      instruction: p.prompt,
      output_1: p.baseline,
      output_2: p.model,
      preference: records[i]!.preference === null ? null : 1 + records[i]!.preference!,
      generator_1: generatorName(baselineName),
      generator_2: generatorName(modelName!),
    }));
    writeFileAtomic(options.annotationsOut, `${JSON.stringify(annotations, null, 1)}\n`);
  }

  const report = evaluateHeadToHead(records, {
    seed: options.seed,
    resamples: options.bootstrap,
    lcResamples: options.lcBootstrap,
    ...difficulty,
  });
  const failed = judgments.flatMap((j) => (j.preference === null ? [j.failed ?? "failed"] : []));
  const pct = (x: number): number => x * 100;
  const lc = report.lengthControlled ? pct(report.lengthControlled.winRate) : null;
  const metrics = {
    win_rate: pct(report.winRate),
    standard_error: pct(report.standardError),
    ci_low: pct(report.ci[0]),
    ci_high: pct(report.ci[1]),
    n_wins: report.wins,
    n_wins_base: report.losses,
    n_draws: report.ties,
    n_total: report.n,
    n_failed: failed.length,
    discrete_win_rate: pct(report.discreteWinRate),
    avg_length: Math.trunc(report.avgModelLength),
    avg_length_baseline: Math.trunc(report.avgBaselineLength),
    length_controlled_winrate: lc,
    lc_ci_low: report.lengthControlledCI ? pct(report.lengthControlledCI[0]) : null,
    lc_ci_high: report.lengthControlledCI ? pct(report.lengthControlledCI[1]) : null,
  };
  if (options.json) process.stdout.write(jsonLine(metrics));
  else
    process.stdout.write(
      `${modelName} vs ${baselineName}: ${pairs.length} prompts, ${report.n} judged, ${failed.length} failed\n${table(
        [
          [
            "length_controlled_winrate",
            report.lengthControlledCI
              ? `${show(lc)}  (${ciText(report.lengthControlledCI.map(pct) as [number, number])})`
              : show(lc),
          ],
          ["win_rate", `${show(metrics.win_rate)}  (${ciText([metrics.ci_low, metrics.ci_high])})`],
          ["standard_error", show(metrics.standard_error)],
          ["discrete_win_rate", show(metrics.discrete_win_rate)],
          ["n_wins", String(metrics.n_wins)],
          ["n_wins_base", String(metrics.n_wins_base)],
          ["n_draws", String(metrics.n_draws)],
          ["n_total", String(metrics.n_total)],
          ["avg_length", `${metrics.avg_length}  (baseline ${metrics.avg_length_baseline})`],
        ],
      )}\n${glmLine(report.lengthControlled)}\n${lcInputsLine(options)}\n` +
        `oracle: ${usage.calls} calls, ${usage.cacheHits} from the cache, ${usage.failures} failures` +
        `${usage.budgetExhausted ? ", budget exhausted" : ""}\n`,
    );
  if (failed.length > 0)
    process.stderr.write(`dno: warning: ${failed.length} judgments failed (first: ${failed[0]})\n`);
  warnIfExtreme(metrics.win_rate, lc, report.n);
}

export function register(program: Command): void {
  program
    .command("eval")
    .description("win rate with standard error, bootstrap CI and length-controlled win rate (AlpacaEval 2.0)")
    .option(
      "--alpaca-annotations <file>",
      "AlpacaEval annotations.json (output_1 = baseline, output_2 = model)",
    )
    .option(
      "--responses <file>",
      "model responses: JSONL {id?, prompt, response}, AlpacaEval outputs JSON, or dno generate output",
    )
    .option("--model <dir>", "generate the model's responses with this checkpoint instead")
    .option(
      "--mixture <run-dir>",
      "generate them with the uniform mixture of the run's iterates pi_1..pi_T (each response from a uniformly drawn iterate)",
    )
    .option("--adapter <dir>", "a PEFT LoRA adapter directory applied to --model")
    .option("--baseline <file>", "baseline responses to the same prompts (matched by id, else by prompt)")
    .option("--baseline-model <dir>", "generate the baseline's responses with this checkpoint instead")
    .option("--prompts <file>", "prompts (JSONL {id?, prompt}) when both sides are checkpoints")
    .option(
      "--temperature <t>",
      "generation temperature (0 = greedy)",
      numberFlag("--temperature", 0, 100),
      0,
    )
    .option("--top-p <p>", "generation nucleus mass", numberFlag("--top-p", 0, 1, { exclusiveMin: true }), 1)
    .option("--max-new-tokens <n>", "generation length limit", intFlag("--max-new-tokens", 1, 1 << 20), 512)
    .option("--responses-out <file>", "save the model's generated responses (JSONL)")
    .option("--baseline-out <file>", "save the baseline's generated responses (JSONL)")
    .option("--oracle <config>", "judge config (YAML), as for dno judge and a pipeline's oracle: section")
    .option("--annotations-out <file>", "also write the judgments as AlpacaEval annotations.json")
    .option(
      "--instruction-difficulty <csv>",
      "AlpacaEval instruction_difficulty.csv (index,instruction_difficulty) for the LC fit",
    )
    .option(
      "--gamed-annotations <csv>",
      "AlpacaEval's df_gamed.csv (its gamed-baseline rows and instruction difficulty): the leaderboard's LC fit",
    )
    .option("--seed <n>", "seed of generation and of the bootstrap", intFlag("--seed", 0, MAX_SEED), 0)
    .option("--bootstrap <n>", "bootstrap resamples", intFlag("--bootstrap", 1, 1_000_000), 2000)
    .option(
      "--lc-bootstrap <n>",
      "bootstrap refits of the LC GLM for its interval (0: none)",
      intFlag("--lc-bootstrap", 0, 1_000_000),
      1000,
    )
    .option(
      "--mt-bench <questions>",
      "MT-Bench: FastChat question.jsonl; grade both turns 1-10 with --oracle",
    )
    .option(
      "--arena-hard <questions>",
      "Arena-Hard: arena-hard-auto question.jsonl; judge against --baseline FILE",
    )
    .option(
      "--answers <file>",
      "the model's answers in the benchmark's model_answer format (instead of --model)",
    )
    .option(
      "--judge-prompts <file>",
      "FastChat judge_prompts.jsonl (MT-Bench) or arena-hard-auto judge config YAML",
    )
    .option(
      "--references <file>",
      "MT-Bench reference answers (FastChat model_answer format) for math, reasoning, coding",
    )
    .option(
      "--judgments <file>",
      "score existing benchmark judgments (FastChat or arena-hard-auto format), no judge",
    )
    .option("--judgments-out <file>", "write the benchmark judgments in the benchmark's own format")
    .option(
      "--judged-model <name>",
      "the model's name in answer and judgment files (picks one model from --judgments)",
    )
    .option(
      "--style-control [features]",
      "Arena-Hard: control the Bradley-Terry fit for style: style (length + markdown), length or markdown",
      (value: string): StyleControl => {
        if (value !== "style" && value !== "length" && value !== "markdown")
          throw new DnoError(`--style-control: expected style, length or markdown, got "${value}"`);
        return value;
      },
    )
    .option("--json", "print one JSON object")
    .action(async (options: EvalOptions, command: Command) => {
      options.maxNewTokensGiven = command.getOptionValueSource("maxNewTokens") !== "default";
      const benchmarks = [options.mtBench, options.arenaHard, options.alpacaAnnotations].filter(Boolean);
      if (benchmarks.length > 1)
        throw new DnoError("dno eval: give one of --mt-bench, --arena-hard and --alpaca-annotations");
      if (options.mtBench || options.arenaHard) {
        // arena-hard-auto bootstraps 100 rounds; --bootstrap given explicitly overrides it.
        const rounds = command.getOptionValueSource("bootstrap") === "default" ? 100 : options.bootstrap;
        const benchmark = { ...options, rounds };
        return options.mtBench
          ? evalMtBench(options.mtBench, benchmark)
          : evalArenaHard(options.arenaHard!, benchmark);
      }
      if (options.alpacaAnnotations && (options.responses || options.model || options.mixture))
        throw new DnoError("dno eval: give either --alpaca-annotations or responses to judge, not both");
      if (options.gamedAnnotations && !options.alpacaAnnotations)
        throw new DnoError(
          "dno eval: --gamed-annotations goes with --alpaca-annotations (AlpacaEval's instructions, judged by its annotator)",
        );
      if (options.alpacaAnnotations) return evalAlpaca(options.alpacaAnnotations, options);
      if (options.responses || options.model || options.mixture) return evalHeadToHead(options);
      throw new DnoError(
        "dno eval: give --alpaca-annotations FILE, or --responses FILE (or --model DIR) with --baseline FILE (or --baseline-model DIR) and --oracle CONFIG",
      );
    });
}
