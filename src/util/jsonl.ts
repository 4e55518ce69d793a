import type { z } from "zod";
import { atLine } from "./errors.js";
import { readTextFile } from "./files.js";
import { describeZodError } from "./zod.js";

/**
 * Reads a JSONL file, parsing each non-blank line with `schema`.
 * Any malformed line throws one DnoError naming `file:line` and what is wrong there.
 */
export function readJsonl<T>(file: string, schema: z.ZodType<T>): T[] {
  const text = readTextFile(file);
  const out: T[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw atLine(file, i + 1, `invalid JSON: ${(e as Error).message}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw atLine(file, i + 1, describeZodError(parsed.error));
    out.push(parsed.data);
  }
  return out;
}

export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join("");
}
