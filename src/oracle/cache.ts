import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { DnoError } from "../util/errors.js";

/** A successful judgment as stored: the parsed result, the raw answer (for audit), the tokens paid. */
export interface CachedJudgment {
  result: unknown;
  raw: string;
  promptTokens: number;
  completionTokens: number;
}

const SCHEMA_VERSION = 1;

/**
 * How many judgments a cache file holds, without writing next to it: SQLite opens a WAL database with
 * -wal/-shm files, so a cache no process has open (no -wal file) is read from a temporary copy.
 */
export function cachedJudgmentCount(path: string): number {
  const inUse = existsSync(`${path}-wal`);
  const tmp = inUse ? undefined : mkdtempSync(join(tmpdir(), "dno-cache-"));
  try {
    const file = tmp ? join(tmp, "cache.sqlite") : path;
    if (tmp) copyFileSync(path, file);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      if (db.pragma("user_version", { simple: true }) === 0) return 0;
      return (db.prepare("SELECT COUNT(*) AS n FROM judgments").get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch (e) {
    throw new DnoError(`${path}: cannot read the judgment cache: ${(e as Error).message}`);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Durable store of successful judgments, keyed by `judgmentKey`, so a repeated or resumed run never
 * pays for the same judgment twice. Failed judgments are never stored: a rerun retries them.
 * Path ":memory:" keeps the cache for the process only.
 */
export class JudgmentCache {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<
    [string],
    { result: string; raw: string; pt: number; ct: number }
  >;
  private readonly putStmt: Database.Statement<[string, string, string, string, number, number]>;

  constructor(readonly path: string) {
    try {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      const version = this.db.pragma("user_version", { simple: true }) as number;
      if (version === 0) {
        this.db.exec(`CREATE TABLE IF NOT EXISTS judgments (
          key TEXT PRIMARY KEY,
          config_hash TEXT NOT NULL,
          result TEXT NOT NULL,
          raw TEXT NOT NULL,
          prompt_tokens INTEGER NOT NULL,
          completion_tokens INTEGER NOT NULL,
          created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) STRICT`);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      } else if (version !== SCHEMA_VERSION) {
        throw new Error(`cache schema version ${version}, this dno reads version ${SCHEMA_VERSION}`);
      }
      this.getStmt = this.db.prepare(
        "SELECT result, raw, prompt_tokens AS pt, completion_tokens AS ct FROM judgments WHERE key = ?",
      );
      this.putStmt = this.db.prepare(
        "INSERT OR REPLACE INTO judgments (key, config_hash, result, raw, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)",
      );
    } catch (e) {
      throw new DnoError(`${path}: cannot open the judgment cache: ${(e as Error).message}`);
    }
  }

  get(key: string): CachedJudgment | undefined {
    const row = this.getStmt.get(key);
    if (!row) return undefined;
    return { result: JSON.parse(row.result), raw: row.raw, promptTokens: row.pt, completionTokens: row.ct };
  }

  put(key: string, configHash: string, judgment: CachedJudgment): void {
    this.putStmt.run(
      key,
      configHash,
      JSON.stringify(judgment.result),
      judgment.raw,
      judgment.promptTokens,
      judgment.completionTokens,
    );
  }

  size(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM judgments").get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** JSON with object keys sorted at every depth, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * The cache key of one judgment: the hash of the oracle's judging config (what changes answers, never
 * keys or reliability knobs), what kind of call it is, the prompt and the candidates in order.
 */
export function judgmentKey(
  configHash: string,
  call: string,
  prompt: string,
  candidates: readonly string[],
): string {
  return sha256Hex(JSON.stringify([configHash, call, prompt, candidates]));
}
