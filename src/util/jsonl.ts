import type { z } from "zod";
import { atLine, DnoError } from "./errors.js";
import { readTextFile } from "./files.js";
import { describeZodError } from "./zod.js";

/**
 * Reads a JSONL file, parsing each non-blank line with `schema`.
 * Any malformed line throws one DnoError naming `file:line` and what is wrong there.
 */
export function readJsonl<T>(file: string, schema: z.ZodType<T>): T[] {
  return readJsonlLines(file, schema).map((r) => r.value);
}

/** `readJsonl`, each row with its 1-based line number (for errors found later, e.g. a duplicate id). */
export function readJsonlLines<T>(file: string, schema: z.ZodType<T>): { line: number; value: T }[] {
  const text = readTextFile(file);
  const out: { line: number; value: T }[] = [];
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
    out.push({ line: i + 1, value: parsed.data });
  }
  return out;
}

/**
 * The input rules every command shares: JSONL with file:line errors, strict UTF-8, at least one
 * record (`what` names them), and, where records carry ids (`idOf`), no id twice (as strings: 1 = "1").
 */
export function readInputRecords<T>(
  file: string,
  schema: z.ZodType<T>,
  what: string,
  idOf?: (record: T) => string | number | undefined,
): { line: number; value: T }[] {
  const rows = readJsonlLines(file, schema);
  if (rows.length === 0) throw new DnoError(`${file}: no ${what} (the file holds no records)`);
  if (idOf) {
    const seen = new Map<string, number>();
    for (const { line, value } of rows) {
      const id = idOf(value);
      if (id === undefined) continue;
      const first = seen.get(String(id));
      if (first !== undefined)
        throw atLine(file, line, `duplicate id ${JSON.stringify(String(id))} (first on line ${first})`);
      seen.set(String(id), line);
    }
  }
  return rows;
}

export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join("");
}
