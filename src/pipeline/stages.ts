/**
 * Atomic, resumable stages. A stage is a name, the run-relative files it writes, and a function that
 * writes them (each atomically) and returns a JSON result. Finished stages are skipped after their
 * files are verified; an unfinished stage is run again from the start, so a kill -9 at any moment
 * loses at most the work of the stage that was running.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { parseJsonText, readTextFile } from "../util/files.js";
import { toJsonl } from "../util/jsonl.js";
import type { RunState, StageRecord } from "./state.js";

/** Progress of a long stage: `done` of `total` units (prompts, comparisons, steps). */
export type ProgressFn = (stage: string, done: number, total: number) => void;

/** Runs a stage of the run (`runStage` bound to the run's state and events). */
export type StageFn = <T>(name: string, outputs: readonly string[], work: () => Promise<T> | T) => Promise<T>;

export interface StageEvents {
  /** A stage starts work (not called for a skipped stage). */
  start?(name: string): void;
  finish?(record: StageRecord, skipped: boolean): void;
}

export async function runStage<T>(
  state: RunState,
  name: string,
  outputs: readonly string[],
  work: () => Promise<T> | T,
  events: StageEvents = {},
): Promise<T> {
  const done = state.get<T>(name);
  if (done) {
    state.verify(done);
    events.finish?.(done, true);
    return done.result;
  }
  events.start?.(name);
  const started = performance.now();
  const result = await work();
  for (const f of outputs) {
    if (!existsSync(join(state.runDir, f))) throw new Error(`stage "${name}" did not write ${f}`);
  }
  const record = state.finish(name, outputs, result, (performance.now() - started) / 1000);
  events.finish?.(record, false);
  return result;
}

/**
 * Work over `count` items in batches of `batchSize`, each finished batch's results kept (atomically) in
 * the run-relative folder `dir`: a killed stage resumes after its last finished batch. The results must
 * not depend on the batching (samples draw seeds by prompt index). The caller removes `dir` once the
 * stage's own output is written.
 */
export async function keptBatches<T>(
  runDir: string,
  dir: string,
  count: number,
  batchSize: number,
  work: (start: number, end: number) => Promise<T[]>,
): Promise<T[]> {
  const folder = join(runDir, dir);
  mkdirSync(folder, { recursive: true });
  const out: T[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const file = join(folder, `${start}-${end}.json`);
    let rows: T[];
    if (existsSync(file)) {
      rows = parseJsonText(readTextFile(file), file) as T[];
      if (!Array.isArray(rows) || rows.length !== end - start) {
        throw new DnoError(`${file}: a kept batch of ${end - start} results is damaged; remove ${folder}`);
      }
    } else {
      rows = await work(start, end);
      writeFileAtomic(file, JSON.stringify(rows));
    }
    out.push(...rows);
  }
  return out;
}

/** Writes `rows` as JSONL at a run-relative path, atomically. */
export function writeJsonlAt(runDir: string, path: string, rows: readonly unknown[]): void {
  const file = join(runDir, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, toJsonl(rows));
}

export function writeJsonAt(runDir: string, path: string, value: unknown): void {
  const file = join(runDir, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Fills a directory atomically: `fill` writes into a fresh sibling, which then replaces `path`.
 * A leftover from an interrupted attempt is removed first.
 */
export async function writeDirAt(
  runDir: string,
  path: string,
  fill: (dir: string) => Promise<void> | void,
): Promise<void> {
  const target = join(runDir, path);
  const tmp = `${target}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await fill(tmp);
  rmSync(target, { recursive: true, force: true });
  renameSync(tmp, target);
}
