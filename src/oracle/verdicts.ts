/** Parsing judge answers. Anything ambiguous is a failure (null / an error), never a guess. */

export type Verdict = "A" | "B" | "tie";

/** Every verdict marker found by one family of patterns, in order. */
function found(text: string, pattern: RegExp, toVerdict: (m: RegExpExecArray) => Verdict): Verdict[] {
  const out: Verdict[] = [];
  for (const m of text.matchAll(pattern)) out.push(toVerdict(m as RegExpExecArray));
  return out;
}

function unanimous(verdicts: Verdict[]): Verdict | null | undefined {
  if (verdicts.length === 0) return undefined;
  return verdicts.every((v) => v === verdicts[0]) ? verdicts[0]! : null;
}

/**
 * The verdict of a pairwise judge answer, A meaning the first response shown is better:
 * `[[A]]` / `[[B]]` / `[[C]]` (tie), else AlpacaEval-style `Output (a)` / `Output (b)`, else an
 * AlpacaEval ranking (`{'model': 'model_1', 'rank': 1}`), else an answer that is exactly `m` (first)
 * or `M` (second). Null when none is found or the answer names conflicting verdicts.
 */
export function parsePairwiseVerdict(text: string): Verdict | null {
  const families: (() => Verdict[])[] = [
    () => found(text, /\[\[\s*([ABC])\s*\]\]/g, (m) => (m[1] === "C" ? "tie" : (m[1] as "A" | "B"))),
    () => found(text, /\bOutput \(([ab])\)/g, (m) => (m[1] === "a" ? "A" : "B")),
    () =>
      found(text, /["']model["']\s*:\s*["']model_([12])["']\s*,\s*["']rank["']\s*:\s*1\b/g, (m) =>
        m[1] === "1" ? "A" : "B",
      ),
  ];
  for (const family of families) {
    const v = unanimous(family());
    if (v !== undefined) return v;
  }
  const bare = text.trim();
  if (bare === "m") return "A";
  if (bare === "M") return "B";
  return null;
}

export interface PointwiseAnswer {
  /** Scores by id. */
  scores: Map<string, number>;
  justifications: Map<string, string>;
}

/**
 * Reads the pointwise judge's JSON object (possibly inside a ```json fence or surrounded by prose):
 * every id must have an integer score in [min, max]; an unknown id, a missing id or truncated JSON is
 * an error string.
 */
export function parsePointwiseAnswer(
  text: string,
  ids: readonly string[],
  min: number,
  max: number,
): PointwiseAnswer | string {
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start < 0 || end <= start) return "no JSON object in the answer";
  let value: unknown;
  try {
    value = JSON.parse(text.slice(start, end + 1));
  } catch (e) {
    return `invalid JSON in the answer: ${(e as Error).message}`;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    return "the answer is not a JSON object";
  const entries = value as Record<string, unknown>;
  const unknown = Object.keys(entries).filter((k) => !ids.includes(k));
  if (unknown.length) return `the answer scores unknown ids ${unknown.join(", ")}`;
  const scores = new Map<string, number>();
  const justifications = new Map<string, string>();
  for (const id of ids) {
    const entry = entries[id];
    if (entry === undefined) return `the answer has no score for id ${id}`;
    const score = typeof entry === "object" && entry !== null ? (entry as { score?: unknown }).score : entry;
    if (typeof score !== "number" || !Number.isInteger(score) || score < min || score > max) {
      return `id ${id}: score must be an integer from ${min} to ${max}, got ${JSON.stringify(score)}`;
    }
    scores.set(id, score);
    const why =
      typeof entry === "object" && entry !== null ? (entry as { justification?: unknown }).justification : "";
    justifications.set(id, typeof why === "string" ? why : "");
  }
  return { scores, justifications };
}
