/**
 * Atomic, resumable stages. A stage is a name, the run-relative files it writes, and a function that
 * writes them (each atomically) and returns a JSON result. Finished stages are skipped after their
 * files are verified; an unfinished stage is run again from the start, so a kill -9 at any moment
 * loses at most the work of the stage that was running.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { toJsonl } from "../util/jsonl.js";
import type { RunState, StageRecord } from "./state.js";

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
