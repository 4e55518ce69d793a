/**
 * A tiny, valid run (the demo's task, a from-scratch model of a few thousand weights) for tests that
 * damage or interrupt run directories: its inputs, a way to run it in-process, and byte snapshots of
 * every file in a folder.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { loadRunConfig } from "../src/pipeline/config.js";
import { type RunOptions, type RunResult, runPipeline } from "../src/pipeline/run.js";
import { toJsonl } from "../src/util/jsonl.js";

const ORACLE = fileURLToPath(new URL("../src/demo/oracle.js", import.meta.url));

export const TINY_CONFIG = `seed: 3
run_dir: run
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 4, epochs: 1, checkpoint_seconds: 0 }
data: { prompts: prompts.jsonl, eval: eval.jsonl }
oracle: { kind: programmatic, module: ${JSON.stringify(ORACLE)} }
iterations: 1
sampling: { samples_per_prompt: 2, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.001, batch_size: 4, checkpoint_seconds: 0 }
eval: { samples_per_prompt: 1 }
`;

/** A folder with dno.yaml and its prompt files (run_dir: run); nothing run yet. */
export function tinyRunInputs(config = TINY_CONFIG): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-tiny-"));
  const words = randomWords(7, 40, DEFAULT_TASK);
  const rows = (from: number, n: number, name: string) =>
    words
      .slice(from, from + n)
      .map((w, i) => ({ id: `${name}${i}`, prompt: promptOf(w), gold: teacherAnswer(w, 7, DEFAULT_TASK) }));
  writeFileSync(join(dir, "sft.jsonl"), toJsonl(rows(0, 16, "s")));
  writeFileSync(join(dir, "prompts.jsonl"), toJsonl(rows(16, 8, "p")));
  writeFileSync(join(dir, "eval.jsonl"), toJsonl(rows(24, 4, "e")));
  writeFileSync(join(dir, "dno.yaml"), config);
  return dir;
}

/** Runs (or resumes) `dir/dno.yaml` in this process. */
export function runTiny(dir: string, options: Omit<RunOptions, "config"> = {}): Promise<RunResult> {
  return runPipeline({ config: loadRunConfig(join(dir, "dno.yaml")), ...options });
}

/** SHA-256 of every file under `dir`, by relative path. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!d.isFile()) continue;
    const file = join(d.parentPath, d.name);
    out[relative(dir, file)] = createHash("sha256").update(readFileSync(file)).digest("hex");
  }
  return out;
}
