import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { type JudgeRow, judgeAll, judgeItemSchema } from "../../oracle/batch.js";
import { configBaseDir, createOracle, parseOracleConfig, readOracleConfigFile } from "../../oracle/config.js";
import { defaultTemplates } from "../../oracle/templates.js";
import type { OracleUsage } from "../../oracle/types.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { readInputRecords, toJsonl } from "../../util/jsonl.js";
import { intFlag, numberFlag } from "../flags.js";

interface JudgeFlags {
  config?: string;
  input?: string;
  output?: string;
  mode?: "pointwise" | "pairwise";
  baseUrl?: string;
  model?: string;
  apiKeyEnv?: string;
  cache?: string;
  concurrency?: number;
  timeoutMs?: number;
  maxRetries?: number;
  json?: boolean;
  writeTemplates?: string;
  maxFailed: number;
}

/** The default --max-failed: a few unparseable answers are normal; more means a broken judge setup. */
const MAX_FAILED_SHARE = 0.05;

/** The config file's settings with the flags laid over them (flags name settings of llm-judge etc.). */
function mergedConfig(flags: JudgeFlags): Record<string, unknown> {
  if (!flags.config && (flags.baseUrl === undefined || flags.model === undefined)) {
    throw new DnoError(
      "dno judge needs an oracle: --config FILE (see `dno init`'s oracle), or --base-url URL and --model NAME " +
        "for an OpenAI-compatible LLM judge",
    );
  }
  const raw: Record<string, unknown> = flags.config
    ? readOracleConfigFile(flags.config)
    : { kind: "llm-judge" };
  const set = (flag: string, key: string, value: unknown, kinds: string[]) => {
    if (value === undefined) return;
    if (!kinds.includes(String(raw.kind))) {
      throw new DnoError(`${flag} does not apply to an oracle of kind ${String(raw.kind)}`);
    }
    raw[key] = value;
  };
  const remote = ["llm-judge", "reward-model"];
  set("--mode", "mode", flags.mode, ["llm-judge"]);
  set("--base-url", "baseUrl", flags.baseUrl, ["llm-judge"]);
  set("--model", "model", flags.model, remote);
  set("--api-key-env", "apiKeyEnv", flags.apiKeyEnv, remote);
  // Relative to where the command runs, unlike paths inside the config file.
  set("--cache", "cache", flags.cache && resolve(flags.cache), remote);
  set("--concurrency", "concurrency", flags.concurrency, remote);
  set("--timeout-ms", "timeoutMs", flags.timeoutMs, remote);
  set("--max-retries", "maxRetries", flags.maxRetries, remote);
  return raw;
}

function summarize(rows: JudgeRow[], usage: OracleUsage, output: string) {
  return {
    items: rows.length,
    failed_items: rows.filter((r) => r.failed !== null).length,
    calls: usage.calls,
    retries: usage.retries,
    cache_hits: usage.cacheHits,
    failures: usage.failures,
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    budget_exhausted: usage.budgetExhausted,
    output,
  };
}

async function runJudge(flags: JudgeFlags): Promise<void> {
  if (flags.writeTemplates) {
    try {
      mkdirSync(flags.writeTemplates, { recursive: true });
      for (const [name, source] of Object.entries(defaultTemplates)) {
        writeFileSync(join(flags.writeTemplates, `${name}.jinja`), source);
      }
    } catch (e) {
      throw new DnoError(`${flags.writeTemplates}: cannot write the templates: ${(e as Error).message}`);
    }
    process.stderr.write(`wrote pointwise.jinja and pairwise.jinja to ${flags.writeTemplates}\n`);
    return;
  }
  if (!flags.input || !flags.output) throw new DnoError("dno judge needs --input and --output");
  const config = parseOracleConfig(mergedConfig(flags), flags.config ?? "judge flags");
  const items = readInputRecords(flags.input, judgeItemSchema, "items", (item) => item.id).map(
    (r) => r.value,
  );
  const oracle = await createOracle(config, flags.config ? { baseDir: configBaseDir(flags.config) } : {});
  const bar = new SingleBar({
    format: "judging [{bar}] {value}/{total} items | {failed} failed | {hits} cached | {calls} calls",
    stream: process.stderr,
    hideCursor: true,
  });
  let failed = 0;
  bar.start(items.length, 0, { failed, hits: 0, calls: 0 });
  let rows: JudgeRow[];
  try {
    rows = await judgeAll(oracle, items, {
      parallelItems: "concurrency" in config ? config.concurrency : 1,
      onItem: (row) => {
        if (row.failed !== null) failed++;
        const u = oracle.usage();
        bar.increment({ failed, hits: u.cacheHits, calls: u.calls });
      },
    });
  } finally {
    bar.stop();
    oracle.close();
  }
  writeFileAtomic(flags.output, toJsonl(rows));
  const summary = summarize(rows, oracle.usage(), flags.output);
  const firstFailure = rows.find((r) => r.failed !== null)?.failed;
  process.stderr.write(
    `judged ${summary.items} items, ${summary.failed_items} failed${firstFailure ? ` (first: ${firstFailure})` : ""}; ` +
      `${summary.calls} calls (${summary.retries} retries), ${summary.cache_hits} cache hits, ` +
      `${summary.total_tokens} tokens (${summary.prompt_tokens} prompt + ${summary.completion_tokens} completion)` +
      `${summary.budget_exhausted ? "; budget exhausted, rerun with a larger budget to finish (paid judgments are cached)" : ""}` +
      ` -> ${flags.output}\n`,
  );
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (summary.items > 0 && summary.failed_items / summary.items > flags.maxFailed) {
    throw new DnoError(
      `${flags.input}: ${summary.failed_items} of ${summary.items} judgments failed, more than --max-failed ` +
        `${flags.maxFailed}${firstFailure ? ` (first: ${firstFailure})` : ""}; ${flags.output} marks them failed, ` +
        "and a rerun retries only them",
    );
  }
}

export function register(program: Command): void {
  program
    .command("judge")
    .description(
      "judge candidate responses with a preference oracle (LLM judge, reward model or your own code)",
    )
    .option("--config <file>", "oracle config (YAML); without it, an llm-judge from the flags")
    .option("--input <file>", 'JSONL lines {"id", "prompt", "candidates": [...], "gold_index"?}')
    .option("--output <file>", "JSONL lines {id, scores, win_rate, preference?, failed}")
    .addOption(new Option("--mode <mode>", "llm-judge mode").choices(["pointwise", "pairwise"]))
    .option("--base-url <url>", "OpenAI-compatible API base URL, e.g. http://127.0.0.1:8080/v1")
    .option("--model <name>", "judge model name")
    .option("--api-key-env <name>", "environment variable holding the API key")
    .option("--cache <file>", "SQLite cache of paid judgments (reused across runs)")
    .option("--concurrency <n>", "requests in flight at most", intFlag("--concurrency", 1, 1024))
    .option("--timeout-ms <n>", "per-request timeout", intFlag("--timeout-ms", 1, 86_400_000))
    .option(
      "--max-retries <n>",
      "retries on 429, 5xx, timeouts and connection errors",
      intFlag("--max-retries", 0, 100),
    )
    .option(
      "--max-failed <share>",
      "exit 1 when more than this share of items failed to be judged (the output is written anyway)",
      numberFlag("--max-failed", 0, 1),
      MAX_FAILED_SHARE,
    )
    .option("--json", "also print the summary as one JSON object on stdout")
    .option("--write-templates <dir>", "write the default prompt templates to edit, then exit")
    .action(async (flags: JudgeFlags) => runJudge(flags));
}
