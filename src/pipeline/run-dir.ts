/**
 * Opening a run directory for `dno run`. Nothing is written until every check passed:
 * - a fresh start only where no results exist (results without a usable state are refused, never
 *   overwritten);
 * - a resume only with the same config (paths aside: the directory may have moved), the same
 *   input files (by SHA-256), an unchanged `config.yaml` snapshot and every finished stage's files intact.
 * The stored config holds paths relative to the run directory, so a run directory can be copied or
 * moved, to another machine too, and resumed there.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { stringify as toYaml } from "yaml";
import { canonicalJson } from "../oracle/cache.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { configPaths, mapConfigPaths, type RunConfig } from "./config.js";
import { fileDamage, hashFile, RunState, STATE_FILE } from "./state.js";

/** What finished stages write: any of these without a usable state means results would be lost. */
const RESULTS = ["data", "checkpoints", "iterations", "metrics.jsonl"];
export const CONFIG_SNAPSHOT = "config.yaml";

/**
 * The stage after which the run no longer reads an input file; every other input (oracle modules,
 * templates, offline preference files) is read throughout. Judgment caches are outputs, not inputs.
 */
const CONSUMED_BY: Record<string, string> = {
  "data.prompts": "prepare",
  "data.eval": "prepare",
  "data.validation": "prepare",
  "sft.data": "prepare",
  "model.path": "sft",
};
const isInput = (field: string) => field !== "run_dir" && !field.endsWith(".cache");

interface RecordedInput {
  path: string;
  sha256: string;
}

/** `checkInputs` runs before a fresh start writes anything (a resume compares inputs by hash instead). */
export function openRunDir(config: RunConfig, checkInputs: () => void): RunState {
  const runDir = config.run_dir;
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) {
    throw new DnoError(`${runDir}: run_dir names a file, not a directory`);
  }
  if (existsSync(runDir) && RunState.usable(runDir)) {
    const state = RunState.open(runDir);
    try {
      checkResume(state, config);
      return state;
    } catch (e) {
      state.close();
      throw e;
    }
  }
  refuseResultsWithoutState(runDir);
  checkInputs();
  const inputs: Record<string, RecordedInput> = {};
  for (const [field, path] of inputFiles(config)) {
    inputs[field] = { path: relative(runDir, path) || ".", sha256: hashInput(path, field) };
  }
  mkdirSync(runDir, { recursive: true });
  const stored = storedConfig(config);
  writeFileAtomic(join(runDir, CONFIG_SNAPSHOT), snapshotYaml(stored));
  const state = RunState.open(runDir);
  state.setMeta({
    config: canonicalJson(stored),
    snapshot: hashFile(join(runDir, CONFIG_SNAPSHOT)),
    inputs: JSON.stringify(inputs),
  });
  return state;
}

/** Results with no usable state: never overwritten (dno run), never shown as an empty run (dno status). */
export function refuseResultsWithoutState(runDir: string): void {
  const found = RESULTS.filter((f) => existsSync(join(runDir, f)));
  if (found.length > 0) {
    throw new DnoError(
      `${runDir}: holds results (${found.join(", ")}) but no usable run state (${STATE_FILE} is missing, ` +
        "empty or names no config); dno never overwrites results: to start over, set run_dir to a new directory",
    );
  }
}

/** Damage that `dno status` and `dno report` show: finished stages' files and the config snapshot. */
export function runDamage(state: RunState): { stage: string; message: string }[] {
  const snapshot = state.getMeta("snapshot");
  const problem =
    snapshot === undefined ? undefined : fileDamage(join(state.runDir, CONFIG_SNAPSHOT), snapshot, "dno run");
  return [...(problem ? [{ stage: "config", message: problem }] : []), ...state.damage()];
}

function checkResume(state: RunState, config: RunConfig): void {
  const runDir = state.runDir;
  const before = JSON.parse(state.getMeta("config")!) as RunConfig;
  const changed = changedFields(before, storedConfig(config));
  if (changed.length > 0) {
    throw new DnoError(
      `${runDir}: this run directory was started with a different config (changed: ${changed.join(", ")}); ` +
        "use a new run directory, or the original config to resume",
    );
  }
  const damage = runDamage(state)[0];
  if (damage) throw new DnoError(damage.message);
  const inputs = JSON.parse(state.getMeta("inputs") ?? "{}") as Record<string, RecordedInput>;
  const now = new Map(inputFiles(config));
  for (const [field, recorded] of Object.entries(inputs)) {
    const path = now.get(field);
    const consumer = CONSUMED_BY[field];
    const consumed = consumer !== undefined && state.get(consumer) !== undefined;
    if (path === undefined) continue; // the field itself changed: reported above
    if (!existsSync(path)) {
      if (consumed) continue;
      throw new DnoError(`${path} (${field}): missing; the run still needs it`);
    }
    if (field === "model.path" && consumed) continue; // a large checkpoint, no longer read
    if (hashInput(path, field) !== recorded.sha256) {
      throw new DnoError(
        `${path} (${field}): changed since the run started (SHA-256 mismatch); ` +
          "restore it, or start a new run directory to use the new content",
      );
    }
  }
}

/** The config as stored in the state and the snapshot: paths relative to the run directory. */
function storedConfig(config: RunConfig): RunConfig {
  return mapConfigPaths(config, (p) => relative(config.run_dir, p) || ".");
}

/** Top-level fields that differ, ignoring paths (a moved directory; inputs are compared by content). */
function changedFields(a: RunConfig, b: RunConfig): string[] {
  const blank = (c: RunConfig) => mapConfigPaths(c, () => "") as unknown as Record<string, unknown>;
  const x = blank(a);
  const y = blank(b);
  return Object.keys({ ...x, ...y }).filter((k) => canonicalJson(x[k]) !== canonicalJson(y[k]));
}

function inputFiles(config: RunConfig): [string, string][] {
  return Object.entries(configPaths(config)).filter(([field]) => isInput(field));
}

/** SHA-256 of a file, or of a directory's files (names and contents, sorted). */
function hashInput(path: string, field: string): string {
  if (!existsSync(path)) throw new DnoError(`${path} (${field}): not found`);
  if (!statSync(path).isDirectory()) return hashFile(path);
  const h = createHash("sha256");
  const files = readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(path, join(d.parentPath, d.name)))
    .sort();
  for (const f of files) h.update(`${f}\0${hashFile(join(path, f))}\n`);
  return h.digest("hex");
}

/** The config as run, every default filled in. Oracle configs name the key's variable, never the key. */
function snapshotYaml(config: RunConfig): string {
  return (
    "# dno run config snapshot (all defaults filled in; paths relative to this run directory; " +
    `API keys are never stored, only their variable names)\n${toYaml(config)}`
  );
}
