/** The run's prompt files: `{id, prompt, gold?}` per JSONL line, checked once at the edge. */
import { z } from "zod";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";

export const promptRowSchema = z.strictObject({
  id: z.string().min(1),
  prompt: z.string().min(1),
  /** The teacher's (gold) response. */
  gold: z.string().optional(),
});
export type PromptRow = z.infer<typeof promptRowSchema>;

/** Reads a prompt file; duplicate ids are an error naming both lines' ids. */
export function readPrompts(file: string): PromptRow[] {
  const rows = readJsonl(file, promptRowSchema);
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.id)) throw new DnoError(`${file}: duplicate id "${r.id}"`);
    seen.add(r.id);
  }
  if (rows.length === 0) throw new DnoError(`${file}: no prompts`);
  return rows;
}

/** Evaluation must be on held-out prompts: no prompt text may appear in both files. */
export function checkDisjoint(
  train: readonly PromptRow[],
  trainFile: string,
  heldOut: readonly PromptRow[],
  heldOutFile: string,
): void {
  const texts = new Set(train.map((r) => r.prompt));
  const shared = heldOut.find((r) => texts.has(r.prompt));
  if (shared) {
    throw new DnoError(
      `${heldOutFile}: prompt of id "${shared.id}" also appears in ${trainFile}; held-out prompts must be disjoint`,
    );
  }
}
