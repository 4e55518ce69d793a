/**
 * A prompt and its longest response must fit the model's context (max_position_embeddings). Checked
 * before any work: attention costs grow with the square of the length, and positions past the
 * context are ones the model never learned.
 */
import { DnoError } from "../util/errors.js";

/** `maxNewTokens` (named `name` in errors) must leave room for at least one prompt token. */
export function checkMaxNewTokens(maxNewTokens: number, context: number, name: string): void {
  if (maxNewTokens >= context) {
    throw new DnoError(
      `${name} ${maxNewTokens} leaves no room for a prompt in the model's context of ${context} tokens (max_position_embeddings)`,
    );
  }
}

/** Throws a DnoError at `where` (file:line) when `promptTokens` + `maxNewTokens` exceed `context`. */
export function checkFitsContext(
  where: string,
  promptTokens: number,
  maxNewTokens: number,
  context: number,
  name: string,
): void {
  if (promptTokens + maxNewTokens > context) {
    throw new DnoError(
      `${where}: the prompt is ${promptTokens} tokens; with ${name} ${maxNewTokens} it needs ` +
        `${promptTokens + maxNewTokens} positions, more than the model's context of ${context} ` +
        "(max_position_embeddings; shorten the prompt or lower the limit)",
    );
  }
}

/** The last tokens of a prompt that leave room for `maxNewTokens` (an explicit `--truncate left`). */
export function truncateLeft(ids: readonly number[], maxNewTokens: number, context: number): number[] {
  return ids.slice(Math.max(0, ids.length - (context - maxNewTokens)));
}

/** A length limit as given: its value, whether the user chose it, and its name in errors. */
export interface NewTokensLimit {
  value: number;
  explicit: boolean;
  name: string;
}

/**
 * Fits prompts (token ids, each with its `where`) to the context: with an explicit limit every prompt
 * plus the limit must fit, or with `truncate` prompts lose their first tokens; a default limit is
 * lowered to what the context leaves after the longest prompt. Returns the ids and the limit to use.
 */
export function fitToContext(
  prompts: readonly { where: string; ids: number[] }[],
  limit: NewTokensLimit,
  context: number,
  truncate?: "left",
): { ids: number[][]; maxNewTokens: number } {
  let maxNewTokens = limit.value;
  if (!limit.explicit && truncate === undefined) {
    const longest = prompts.reduce((m, p) => Math.max(m, p.ids.length), 0);
    if (context - longest >= 1) maxNewTokens = Math.min(limit.value, context - longest);
  }
  checkMaxNewTokens(maxNewTokens, context, limit.name);
  const ids = prompts.map((p) => {
    if (truncate === "left") return truncateLeft(p.ids, maxNewTokens, context);
    checkFitsContext(p.where, p.ids.length, maxNewTokens, context, limit.name);
    return p.ids;
  });
  return { ids, maxNewTokens };
}
