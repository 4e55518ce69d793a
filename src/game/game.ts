/**
 * Finite preference games: per prompt x a finite response set Y_x and a preference matrix
 * P[i][j] = P(y_i > y_j | x) with P + P^T = 1 (so P[i][i] = 1/2), not necessarily transitive.
 */

import { z } from "zod";
import { DnoError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";

export interface PromptGame {
  id: string;
  responses: string[];
  /** preference[i][i'] = P(y_i > y_i' | x). */
  preference: Float64Array[];
  /** pi_1 (and the fixed reference pi_ref of DPO, IPO and the tau-regularised variant); sums to 1, > 0. */
  initial: Float64Array;
}

export interface Game {
  name: string;
  description: string;
  prompts: PromptGame[];
}

/** Tolerance for P + P^T = 1 and for the initial policy summing to 1. */
export const GAME_TOLERANCE = 1e-9;

const promptSchema = z.strictObject({
  id: z.string().min(1),
  responses: z.array(z.string()).min(2, "needs at least 2 responses"),
  preference: z.array(z.array(z.number())),
  initial: z.array(z.number()).optional(),
});

const gameSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  prompts: z.array(promptSchema).min(1, "needs at least 1 prompt"),
});

export type GameJson = z.input<typeof gameSchema>;

/** Validates a parsed JSON game; every error names `source` and the field path. */
export function parseGame(value: unknown, source: string): Game {
  const parsed = gameSchema.safeParse(value);
  if (!parsed.success) throw new DnoError(`${source}: ${describeZodError(parsed.error)}`);
  const seenIds = new Set<string>();
  const prompts = parsed.data.prompts.map((p, k): PromptGame => {
    const at = (field: string) => `${source}: prompts[${k}].${field}`;
    if (seenIds.has(p.id)) throw new DnoError(`${at("id")}: duplicate prompt id "${p.id}"`);
    seenIds.add(p.id);
    const n = p.responses.length;
    if (new Set(p.responses).size !== n) throw new DnoError(`${at("responses")}: responses must be distinct`);
    if (p.preference.length !== n) {
      throw new DnoError(
        `${at("preference")}: has ${p.preference.length} rows, expected ${n} (one per response)`,
      );
    }
    p.preference.forEach((row, i) => {
      if (row.length !== n)
        throw new DnoError(`${at(`preference[${i}]`)}: has ${row.length} entries, expected ${n}`);
      row.forEach((v, j) => {
        if (!(v >= 0 && v <= 1))
          throw new DnoError(`${at(`preference[${i}][${j}]`)}: ${v} is not a probability in [0, 1]`);
      });
    });
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const sum = p.preference[i]![j]! + p.preference[j]![i]!;
        if (Math.abs(sum - 1) > GAME_TOLERANCE) {
          throw new DnoError(
            `${at(`preference[${i}][${j}]`)}: P[${i}][${j}] + P[${j}][${i}] = ${sum}, but P + P^T must be 1` +
              (i === j ? " (the diagonal is 1/2)" : ""),
          );
        }
      }
    }
    let initial: Float64Array;
    if (p.initial === undefined) {
      initial = new Float64Array(n).fill(1 / n);
    } else {
      if (p.initial.length !== n)
        throw new DnoError(`${at("initial")}: has ${p.initial.length} entries, expected ${n}`);
      p.initial.forEach((v, i) => {
        if (!(v > 0 && v <= 1)) throw new DnoError(`${at(`initial[${i}]`)}: ${v} must be in (0, 1]`);
      });
      const total = p.initial.reduce((a, b) => a + b, 0);
      if (Math.abs(total - 1) > 1e-6) throw new DnoError(`${at("initial")}: sums to ${total}, must sum to 1`);
      initial = Float64Array.from(p.initial, (v) => v / total);
    }
    return {
      id: p.id,
      responses: p.responses,
      preference: p.preference.map((row) => Float64Array.from(row)),
      initial,
    };
  });
  return { name: parsed.data.name, description: parsed.data.description ?? "", prompts };
}

export function loadGame(file: string): Game {
  const value = readJsonFile(file);
  return parseGame(value, file);
}

/** The JSON form of a game (the format `parseGame` reads). */
export function gameToJson(game: Game): GameJson {
  return {
    name: game.name,
    description: game.description,
    prompts: game.prompts.map((p) => ({
      id: p.id,
      responses: p.responses,
      preference: p.preference.map((row) => [...row]),
      initial: [...p.initial],
    })),
  };
}
