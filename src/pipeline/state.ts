/**
 * The run's state file (`state.sqlite`): which stages finished, what they wrote (each file's SHA-256)
 * and what they returned. A stage counts as finished only once its row is committed, after its files
 * are durably in place; anything written by an unfinished stage is redone, and a finished stage whose
 * files changed is reported as damage, never silently used.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import Database from "better-sqlite3";
import { DnoError } from "../util/errors.js";

const SCHEMA_VERSION = 1;
export const STATE_FILE = "state.sqlite";

export interface StageRecord<T = unknown> {
  name: string;
  /** Run-relative path -> SHA-256 of every file the stage wrote. */
  outputs: Record<string, string>;
  result: T;
  seconds: number;
  finishedAt: string;
}

export class RunState {
  /** Stages whose files were verified since this state was opened. */
  private readonly verified = new Set<string>();

  private constructor(
    private readonly db: Database.Database,
    readonly runDir: string,
  ) {}

  /**
   * Opens (`create`: or creates) the state of a run directory. Without `create` the state is opened
   * read-only: reading a run (`dno status`, `dno report`) never writes to it.
   */
  static open(runDir: string, options: { create: boolean } = { create: true }): RunState {
    const file = join(runDir, STATE_FILE);
    if (!options.create) return RunState.openReadOnly(runDir, file);
    let db: Database.Database;
    try {
      db = new Database(file);
      // A rollback journal, not WAL: read-only readers (dno status) then leave no -wal/-shm files behind.
      db.pragma("journal_mode = DELETE");
      db.pragma("synchronous = FULL");
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version === 0) {
        db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
          CREATE TABLE IF NOT EXISTS stages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            outputs TEXT NOT NULL,
            result TEXT NOT NULL,
            seconds REAL NOT NULL,
            finished_at TEXT NOT NULL
          ) STRICT;`);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      } else if (version !== SCHEMA_VERSION) {
        throw new Error(`state schema version ${version}, this dno reads version ${SCHEMA_VERSION}`);
      }
      db.prepare("SELECT COUNT(*) FROM stages").get();
    } catch (e) {
      throw new DnoError(`${file}: cannot open the run state: ${(e as Error).message}`);
    }
    return new RunState(db, runDir);
  }

  private static openReadOnly(runDir: string, file: string): RunState {
    if (!existsSync(file) || statSync(file).size === 0) {
      throw new DnoError(`${runDir}: not a dno run directory (no ${STATE_FILE}, or an empty one)`);
    }
    rollBackKilledWriter(file);
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version !== SCHEMA_VERSION) {
        throw new Error(`state schema version ${version}, this dno reads version ${SCHEMA_VERSION}`);
      }
      db.prepare("SELECT COUNT(*) FROM stages").get();
    } catch (e) {
      throw new DnoError(`${file}: cannot open the run state: ${(e as Error).message}`);
    }
    return new RunState(db, runDir);
  }

  /** Whether `runDir` holds a run state that names its config (a run that can be resumed). */
  static usable(runDir: string): boolean {
    const file = join(runDir, STATE_FILE);
    if (!existsSync(file) || statSync(file).size === 0) return false;
    const state = RunState.open(runDir, { create: false });
    try {
      return state.getMeta("config") !== undefined;
    } finally {
      state.close();
    }
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  /** Sets several meta keys in one transaction: all or none survive a crash. */
  setMeta(entries: Record<string, string>): void {
    const insert = this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    this.db.transaction(() => {
      for (const [key, value] of Object.entries(entries)) insert.run(key, value);
    })();
  }

  get<T>(name: string): StageRecord<T> | undefined {
    const row = this.db
      .prepare("SELECT name, outputs, result, seconds, finished_at FROM stages WHERE name = ?")
      .get(name) as
      | { name: string; outputs: string; result: string; seconds: number; finished_at: string }
      | undefined;
    if (!row) return undefined;
    return {
      name: row.name,
      outputs: JSON.parse(row.outputs),
      result: JSON.parse(row.result) as T,
      seconds: row.seconds,
      finishedAt: row.finished_at,
    };
  }

  /** Every finished stage, in the order it finished. */
  all(): StageRecord[] {
    const names = this.db.prepare("SELECT name FROM stages ORDER BY seq").all() as { name: string }[];
    return names.map((r) => this.get(r.name)!);
  }

  /** Records a finished stage: hashes its files now, after they were written and synced. */
  finish<T>(name: string, files: readonly string[], result: T, seconds: number): StageRecord<T> {
    const outputs: Record<string, string> = {};
    for (const f of files)
      for (const path of expandFiles(this.runDir, f)) outputs[path] = hashFile(join(this.runDir, path));
    const finishedAt = new Date().toISOString();
    this.db
      .prepare("INSERT INTO stages (name, outputs, result, seconds, finished_at) VALUES (?, ?, ?, ?, ?)")
      .run(name, JSON.stringify(outputs), JSON.stringify(result ?? null), seconds, finishedAt);
    return { name, outputs, result, seconds, finishedAt };
  }

  /** Throws a DnoError naming the first file of a finished stage that is missing or changed. */
  verify(record: StageRecord): void {
    if (this.verified.has(record.name)) return;
    const problem = this.damageOf(record)[0];
    if (problem) throw new DnoError(problem);
    this.verified.add(record.name);
  }

  /** One message per recorded file (of every finished stage) that is missing or changed. */
  damage(): { stage: string; message: string }[] {
    return this.all().flatMap((r) => this.damageOf(r).map((message) => ({ stage: r.name, message })));
  }

  private damageOf(record: StageRecord): string[] {
    const problems: string[] = [];
    for (const [path, hash] of Object.entries(record.outputs)) {
      const problem = fileDamage(join(this.runDir, path), hash, `stage "${record.name}"`);
      if (problem) problems.push(problem);
    }
    return problems;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** A run-relative file, or every file under a run-relative directory, sorted. */
function expandFiles(runDir: string, path: string): string[] {
  const full = join(runDir, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(runDir, join(d.parentPath, d.name)))
    .sort();
}

/** Why `file` no longer matches the SHA-256 that `writer` recorded for it, or undefined. */
export function fileDamage(file: string, hash: string, writer: string): string | undefined {
  if (!existsSync(file)) return `${file}: missing, but ${writer} wrote it; the run directory is damaged`;
  if (hashFile(file) !== hash)
    return `${file}: changed since ${writer} wrote it (SHA-256 mismatch); the run directory is damaged`;
  return undefined;
}

export function hashFile(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/**
 * A writer killed mid-transaction (kill -9) leaves a hot rollback journal, which a read-only connection
 * cannot roll back ("attempt to write a readonly database"). A read-write connection rolls it back on its
 * first read; where that is not allowed, the read-only open reports the error.
 */
function rollBackKilledWriter(file: string): void {
  const journal = `${file}-journal`;
  if (!existsSync(journal) || statSync(journal).size === 0) return;
  try {
    const db = new Database(file, { fileMustExist: true });
    db.prepare("SELECT COUNT(*) FROM sqlite_master").get();
    db.close();
  } catch {
    // left to the read-only open
  }
}
