/** Built-in preference games, each chosen to show one thing about DNO. */

import { sigmoid } from "../core/prob.js";
import { Rng } from "../core/rng.js";
import { DnoError } from "../util/errors.js";
import type { Game, PromptGame } from "./game.js";
import { solveNash } from "./nash.js";

/** A prompt starting from Algorithm 1's pi_1 = uniform. */
function prompt(id: string, responses: string[], preference: number[][]): PromptGame {
  return {
    id,
    responses,
    preference: preference.map((row) => Float64Array.from(row)),
    initial: new Float64Array(responses.length).fill(1 / responses.length),
  };
}

/**
 * Rock-paper-scissors. Algorithm 1's pi_1 (uniform) is already the Nash equilibrium, so exact DNO stays
 * there while sampled methods are kicked off it by their own sampling noise; a JSON game with an
 * `initial` policy starts elsewhere.
 */
function rps(): Game {
  return {
    name: "rps",
    description: "rock-paper-scissors, intransitive; Nash = uniform = pi_1",
    prompts: [
      prompt(
        "rps",
        ["rock", "paper", "scissors"],
        [
          [0.5, 0, 1],
          [1, 0.5, 0],
          [0, 1, 0.5],
        ],
      ),
    ],
  };
}

/** Bradley-Terry-consistent: P(y_i > y_j) = sigma(s_i - s_j); the Nash is the top response, pure. */
function bradleyTerry(): Game {
  const scores = [2, 1, 0.5, 0, -1];
  return {
    name: "bradley-terry",
    description: `transitive, P = sigma(s_i - s_j) with s = (${scores.join(", ")}); Nash = the top response`,
    prompts: [
      prompt(
        "bt",
        scores.map((s) => `s=${s}`),
        scores.map((si) => scores.map((sj) => sigmoid(si - sj))),
      ),
    ],
  };
}

/** A Condorcet winner beats every response, which cycle among themselves: the Nash is pure on it. */
function condorcet(): Game {
  return {
    name: "condorcet",
    description: "a Condorcet winner over a rock-paper-scissors cycle; Nash = the winner",
    prompts: [
      prompt(
        "condorcet",
        ["winner", "a", "b", "c"],
        [
          [0.5, 0.6, 0.65, 0.7],
          [0.4, 0.5, 0.9, 0.1],
          [0.35, 0.1, 0.5, 0.9],
          [0.3, 0.9, 0.1, 0.5],
        ],
      ),
    ],
  };
}

/**
 * Random intransitive games (seeded, fixed): three prompts with 4, 5 and 6 responses, P(y_i > y_j)
 * uniform in [0, 1] above the diagonal; a draw is kept only if its Nash equilibrium mixes at least
 * 3 responses, so no response is a Condorcet winner and reward-based methods cannot represent it.
 */
function randomIntransitive(): Game {
  const prompts = [4, 5, 6].map((n, k) => {
    for (let attempt = 0; ; attempt++) {
      const rng = Rng.derive(2404, "random-intransitive", k, attempt);
      const p = Array.from({ length: n }, () => new Array<number>(n).fill(0.5));
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          p[i]![j] = Math.round(rng.float() * 100) / 100;
          p[j]![i] = 1 - p[i]![j]!;
        }
      }
      const game = prompt(
        `random-${k}`,
        Array.from({ length: n }, (_, i) => `y${i}`),
        p,
      );
      const support = solveNash(game.preference).policy.filter((v) => v > 1e-6).length;
      if (support >= 3) return game;
    }
  });
  return {
    name: "random",
    description: "3 random intransitive prompts (4, 5, 6 responses), each with a mixed Nash equilibrium",
    prompts,
  };
}

export const BUILTIN_GAMES = {
  rps,
  "bradley-terry": bradleyTerry,
  random: randomIntransitive,
  condorcet,
} as const;

export type BuiltinGameName = keyof typeof BUILTIN_GAMES;

export function builtinGame(name: string): Game {
  if (!Object.hasOwn(BUILTIN_GAMES, name)) {
    throw new DnoError(
      `unknown built-in game "${name}"; expected one of ${Object.keys(BUILTIN_GAMES).join(", ")}`,
    );
  }
  return BUILTIN_GAMES[name as BuiltinGameName]();
}
