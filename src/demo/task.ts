/**
 * The built-in demo task: reverse a short word. "rev bhdk=" is answered "kdhb".
 *
 * A correct answer can be written in three styles: plain ("kdhb"), upper ("KDHB") or dotted
 * ("k.d.h.b"). The oracle's preference is general: a correct answer beats a wrong one; two wrong
 * answers tie; between two correct answers the styles form a rock-paper-scissors cycle
 * (upper beats plain, dotted beats upper, plain beats dotted, each with probability `styleWin`), so no
 * style is best and the Nash policy answers correctly in a uniform mixture of the three styles.
 *
 * The teacher is imperfect: on a fixed 30% of prompts it swaps two adjacent letters, and it writes
 * mostly plain (80%, upper 10%, dotted 10%). An SFT student copies both habits; DNO can fix the first
 * (correctness pairs) and must learn that the second is exploitable (the style cycle).
 */
import { Rng } from "../core/rng.js";

export const STYLES = ["plain", "upper", "dotted"] as const;
export type Style = (typeof STYLES)[number];

/** G[i][j] = P(style i beats style j) between two correct answers; G + G^T = 1. */
export function styleGame(styleWin: number): number[][] {
  const w = styleWin;
  const l = 1 - styleWin;
  // rows/cols: plain, upper, dotted. upper > plain, dotted > upper, plain > dotted.
  return [
    [0.5, l, w],
    [w, 0.5, l],
    [l, w, 0.5],
  ];
}

export const LETTERS = "abcdefghijklmnop";

export interface DemoTaskOptions {
  /** Probability that a style beats the one it dominates in the cycle. */
  styleWin: number;
  /** Fraction of prompts on which the teacher's gold answer is wrong. */
  teacherErrorRate: number;
  /** The teacher's style frequencies (plain, upper, dotted). */
  teacherStyles: readonly [number, number, number];
  minLength: number;
  maxLength: number;
}

export const DEFAULT_TASK: DemoTaskOptions = {
  styleWin: 0.9,
  teacherErrorRate: 0.3,
  teacherStyles: [0.8, 0.1, 0.1],
  minLength: 3,
  maxLength: 6,
};

export function promptOf(word: string): string {
  return `rev ${word}=`;
}

/** The word a prompt asks to reverse, or null when the prompt is not a demo prompt. */
export function wordOf(prompt: string): string | null {
  const m = /^rev ([a-z]+)=$/.exec(prompt);
  return m ? m[1]! : null;
}

export function reverse(word: string): string {
  return [...word].reverse().join("");
}

export function render(letters: string, style: Style): string {
  if (style === "upper") return letters.toUpperCase();
  if (style === "dotted") return [...letters].join(".");
  return letters;
}

/** The style and letters of a well-formed answer; null for anything else (a malformed answer is wrong). */
export function parseAnswer(text: string): { letters: string; style: Style } | null {
  if (/^[a-z]+$/.test(text)) return { letters: text, style: "plain" };
  if (/^[A-Z]+$/.test(text)) return { letters: text.toLowerCase(), style: "upper" };
  if (/^[a-z](\.[a-z])+$/.test(text)) return { letters: text.replaceAll(".", ""), style: "dotted" };
  return null;
}

/** The style of an answer that is correct for `prompt`, else null. */
export function correctStyle(prompt: string, answer: string): Style | null {
  const word = wordOf(prompt);
  const parsed = parseAnswer(answer);
  if (word === null || parsed === null || parsed.letters !== reverse(word)) return null;
  return parsed.style;
}

/** The demo oracle: P(a > b | prompt). Correctness first, then the style cycle. */
export function demoPreference(options: Pick<DemoTaskOptions, "styleWin">) {
  const game = styleGame(options.styleWin);
  return (prompt: string, a: string, b: string): number => {
    const sa = correctStyle(prompt, a);
    const sb = correctStyle(prompt, b);
    if (sa === null || sb === null) return sa === sb ? 0.5 : sa === null ? 0 : 1;
    return game[STYLES.indexOf(sa)]![STYLES.indexOf(sb)]!;
  };
}

/**
 * The teacher's gold answer: deterministic per (seed, word). Wrong answers swap two adjacent
 * letters of the reversal, so they look right and differ from it by one transposition.
 */
export function teacherAnswer(word: string, seed: number, options: DemoTaskOptions): string {
  const rng = Rng.derive(seed, "teacher", word);
  let letters = reverse(word);
  if (rng.float() < options.teacherErrorRate) {
    const chars = [...letters];
    let i = rng.int(chars.length - 1);
    // Swapping two equal letters would leave the answer correct; take the next distinct neighbour pair.
    for (let tries = 0; tries < chars.length && chars[i] === chars[i + 1]; tries++)
      i = (i + 1) % (chars.length - 1);
    [chars[i], chars[i + 1]] = [chars[i + 1]!, chars[i]!];
    letters = chars.join("");
  }
  return render(letters, STYLES[rng.categorical(options.teacherStyles)]!);
}

/** `count` distinct random words, the same for the same seed. */
export function randomWords(seed: number, count: number, options: DemoTaskOptions): string[] {
  const rng = Rng.derive(seed, "words");
  const seen = new Set<string>();
  const out: string[] = [];
  while (out.length < count) {
    const length = options.minLength + rng.int(options.maxLength - options.minLength + 1);
    let w = "";
    for (let i = 0; i < length; i++) w += LETTERS[rng.int(LETTERS.length)];
    if (seen.has(w)) continue;
    seen.add(w);
    out.push(w);
  }
  return out;
}

/**
 * Exploitability of a style mixture f (plain, upper, dotted) in the style game:
 * max_s sum_s' f(s') G(s, s') - 1/2. Zero exactly at the uniform mixture (the Nash equilibrium),
 * styleWin - 1/2 at a pure style.
 */
export function styleExploitability(f: readonly number[], styleWin: number): number {
  const total = f[0]! + f[1]! + f[2]!;
  if (!(total > 0)) return Number.NaN;
  const game = styleGame(styleWin);
  let best = -Infinity;
  for (const row of game)
    best = Math.max(best, (row[0]! * f[0]! + row[1]! * f[1]! + row[2]! * f[2]!) / total);
  return best - 0.5;
}
