/**
 * Defect detection: Algorithm 2 flags samples with many repeated n-grams (degenerate loops) as
 * automatic negatives, whatever the annotator said.
 */

export interface DefectOptions {
  /** n-gram length; default 3. */
  n?: number;
  /** Flag when the repeated fraction exceeds this; default 0.4. */
  maxRepeatFraction?: number;
  /** Sequences with fewer n-grams than this are never flagged; default 4. */
  minNgrams?: number;
}

/**
 * Fraction of n-gram occurrences that repeat an earlier one: 1 - distinct/total over the
 * sequence's n-grams (0 for a sequence without repeats, towards 1 for "the the the ...").
 */
export function repeatedNgramFraction(tokens: readonly (string | number)[], n = 3): number {
  const total = tokens.length - n + 1;
  if (total <= 0) return 0;
  const seen = new Set<string>();
  for (let i = 0; i < total; i++) seen.add(tokens.slice(i, i + n).join("\u0000"));
  return 1 - seen.size / total;
}

/** Words of a response for n-gram counting: lower-cased, split on whitespace. */
export function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w !== "");
}

/** Whether a response (text, split into words, or token ids) is degenerate. */
export function isDefective(
  response: string | readonly (string | number)[],
  options: DefectOptions = {},
): boolean {
  const n = options.n ?? 3;
  const tokens = typeof response === "string" ? words(response) : response;
  if (tokens.length - n + 1 < (options.minNgrams ?? 4)) return false;
  return repeatedNgramFraction(tokens, n) > (options.maxRepeatFraction ?? 0.4);
}
