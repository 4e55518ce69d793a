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
