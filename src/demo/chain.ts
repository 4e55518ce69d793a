/**
 * The built-in reasoning task (`dno demo --task chain`): a chain of additions and subtractions of
 * single digits, modulo 10, solved one step at a time. "chain 3+4-8+5=" is answered
 * "3+4=7;7-8=9;9+5=4": each step restates the running value, the operation and the new value, steps
 * end with ";", and the answer is the last step's value. The outcome check is programmatic: the answer
 * is right or it is not, whatever the steps say (a well-formed response is needed to read it).
 *
 * The teacher is imperfect: on a fixed 30% of prompts one of its steps is off by one and the chain
 * carries the slip on, so its answer is wrong. A student trained on it makes the same kind of slips;
 * step-level search (MCTS-DPO) can find which step went wrong, instance-level pairs only which answer.
 */
import { Rng } from "../core/rng.js";

export interface ChainTaskOptions {
  /** Operations per chain (steps). */
  steps: number;
  /** Fraction of prompts on which the teacher slips once. */
  teacherErrorRate: number;
}

export const DEFAULT_CHAIN: ChainTaskOptions = { steps: 3, teacherErrorRate: 0.3 };

export const STEP_DELIMITER = ";";

export interface Chain {
  start: number;
  ops: { op: "+" | "-"; digit: number }[];
}

export function chainPrompt(chain: Chain): string {
  return `chain ${chain.start}${chain.ops.map((o) => `${o.op}${o.digit}`).join("")}=`;
}

/** The chain a prompt asks for, or null when it is not a chain prompt. */
export function parseChain(prompt: string): Chain | null {
  const m = /^chain (\d)((?:[+-]\d)+)=$/.exec(prompt);
  if (!m) return null;
  const ops = [...m[2]!.matchAll(/([+-])(\d)/g)].map((o) => ({ op: o[1] as "+" | "-", digit: Number(o[2]) }));
  return { start: Number(m[1]), ops };
}

const apply = (value: number, op: "+" | "-", digit: number) =>
  (op === "+" ? value + digit : value - digit + 10) % 10;

/** The correct final value. */
export function chainAnswer(chain: Chain): number {
  return chain.ops.reduce((v, o) => apply(v, o.op, o.digit), chain.start);
}

/** The steps of a solution; `slipAt` makes that step's result off by one (carried on). */
export function solve(chain: Chain, slipAt: number | null = null): string {
  let value = chain.start;
  return chain.ops
    .map((o, i) => {
      let next = apply(value, o.op, o.digit);
      if (i === slipAt) next = (next + 1) % 10;
      const text = `${value}${o.op}${o.digit}=${next}`;
      value = next;
      return text;
    })
    .join(STEP_DELIMITER);
}

/** The final value a response states: the number after the last "=", or null if malformed. */
export function statedAnswer(response: string): number | null {
  const m = /=(\d)$/.exec(response);
  return m ? Number(m[1]) : null;
}

/** The outcome check: does the response end with the right answer? */
export function isCorrect(prompt: string, response: string): boolean {
  const chain = parseChain(prompt);
  return chain !== null && statedAnswer(response) === chainAnswer(chain);
}

/** The teacher's solution: deterministic per (seed, prompt). */
export function chainTeacher(chain: Chain, seed: number, options: ChainTaskOptions): string {
  const rng = Rng.derive(seed, "chain-teacher", chainPrompt(chain));
  const slip = rng.float() < options.teacherErrorRate ? rng.int(chain.ops.length) : null;
  return solve(chain, slip);
}

/** `count` distinct random chains, the same for the same seed. */
export function randomChains(seed: number, count: number, options: ChainTaskOptions): Chain[] {
  const rng = Rng.derive(seed, "chains");
  const seen = new Set<string>();
  const out: Chain[] = [];
  const possible = 10 * 20 ** options.steps;
  if (count > possible) throw new RangeError(`only ${possible} distinct chains of ${options.steps} steps`);
  while (out.length < count) {
    const chain: Chain = {
      start: rng.int(10),
      ops: Array.from({ length: options.steps }, () => ({
        op: rng.int(2) === 0 ? ("+" as const) : ("-" as const),
        digit: rng.int(10),
      })),
    };
    const key = chainPrompt(chain);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(chain);
  }
  return out;
}

/** The chain task's preference: a right answer beats a wrong one; otherwise a tie. */
export function chainPreference(prompt: string, a: string, b: string): number {
  const ca = isCorrect(prompt, a);
  const cb = isCorrect(prompt, b);
  return ca === cb ? 0.5 : ca ? 1 : 0;
}
