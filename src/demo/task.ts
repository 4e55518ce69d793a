/**
 * The built-in demo task: reverse a short word. "rev bhdk=" is answered "kdhb".
 *
 * A correct answer can be written in four styles: plain ("kdhb") or in brackets: square ("[kdhb]"),
 * round ("(kdhb)") or curly ("{kdhb}"); the style is the answer's first token, the letters are the same.
 * The oracle's preference is general: a correct answer beats a wrong one; two wrong answers tie;
 * between two correct answers, each bracketed style beats plain (probability `beatsPlain`), and the
 * three brackets form a rock-paper-scissors cycle (round beats square, curly beats round, square beats
 * curly, each with probability `cycleWin`). No style is best: the Nash policy answers correctly in a
 * uniform mixture of the three brackets.
 *
 * The teacher is imperfect: on a fixed 30% of prompts it swaps two adjacent letters, and it mostly
 * writes plain (70%; each bracket 10%). An SFT student copies both habits; DNO can fix the
 * first (correctness pairs) and must find that the second is exploitable and that no single style
 * replaces it (the cycle).
 */
import { Rng } from "../core/rng.js";

export const STYLES = ["plain", "square", "round", "curly"] as const;
export type Style = (typeof STYLES)[number];

/** G[i][j] = P(style i beats style j) between two correct answers (order of STYLES); G + G^T = 1. */
export function styleGame(options: Pick<DemoTaskOptions, "beatsPlain" | "cycleWin">): number[][] {
  const p = options.beatsPlain;
  const w = options.cycleWin;
  return [
    [0.5, 1 - p, 1 - p, 1 - p], // plain loses to every bracket
    [p, 0.5, 1 - w, w], // square: beats curly, loses to round
    [p, w, 0.5, 1 - w], // round: beats square, loses to curly
    [p, 1 - w, w, 0.5], // curly: beats round, loses to square
  ];
}

export const LETTERS = "abcdefghijklmnop";

export interface DemoTaskOptions {
  /** P(a bracketed answer beats a plain one), both correct. */
  beatsPlain: number;
  /** P(a bracket beats the one it dominates in the cycle), both answers correct. */
  cycleWin: number;
  /** Fraction of prompts on which the teacher's gold answer is wrong. */
  teacherErrorRate: number;
  /** The teacher's style frequencies, in the order of STYLES. */
  teacherStyles: readonly number[];
  minLength: number;
  maxLength: number;
}

export const DEFAULT_TASK: DemoTaskOptions = {
  beatsPlain: 0.9,
  cycleWin: 0.6,
  teacherErrorRate: 0.3,
  teacherStyles: [0.55, 0.15, 0.15, 0.15],
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

const BRACKETS: Record<Style, [string, string]> = {
  plain: ["", ""],
  square: ["[", "]"],
  round: ["(", ")"],
  curly: ["{", "}"],
};

export function render(letters: string, style: Style): string {
  const [open, close] = BRACKETS[style];
  return `${open}${letters}${close}`;
}

/** The style and letters of a well-formed answer; null for anything else (a malformed answer is wrong). */
export function parseAnswer(text: string): { letters: string; style: Style } | null {
  for (const style of STYLES) {
    const [open, close] = BRACKETS[style];
    if (text.startsWith(open) && text.endsWith(close)) {
      const letters = text.slice(open.length, text.length - close.length);
      if (/^[a-z]+$/.test(letters)) return { letters, style };
    }
  }
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
export function demoPreference(options: Pick<DemoTaskOptions, "beatsPlain" | "cycleWin">) {
  const game = styleGame(options);
  return (prompt: string, a: string, b: string): number => {
    const sa = correctStyle(prompt, a);
    const sb = correctStyle(prompt, b);
    if (sa === null || sb === null) return sa === sb ? 0.5 : sa === null ? 0 : 1;
    return game[STYLES.indexOf(sa)]![STYLES.indexOf(sb)]!;
  };
}

/**
 * The teacher's gold answer: deterministic per (seed, word) (and `draw`). Wrong answers swap two adjacent
 * letters of the reversal, so they look right and differ from it by one transposition.
 */
export function teacherAnswer(word: string, seed: number, options: DemoTaskOptions, draw = 0): string {
  // draw 0 is the gold answer; later draws are further answers the teacher could have written.
  const rng = draw === 0 ? Rng.derive(seed, "teacher", word) : Rng.derive(seed, "teacher", word, draw);
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
 * Exploitability of a style mixture f (order of STYLES) in the style game:
 * max_s sum_s' f(s') G(s, s') - 1/2. Zero exactly at the Nash mixture (a third of each bracket),
 * beatsPlain - 1/2 when every answer is plain.
 */
export function styleExploitability(
  f: readonly number[],
  options: Pick<DemoTaskOptions, "beatsPlain" | "cycleWin">,
): number {
  const total = f.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return Number.NaN;
  let best = -Infinity;
  for (const row of styleGame(options))
    best = Math.max(best, row.reduce((a, g, j) => a + g * f[j]!, 0) / total);
  return best - 0.5;
}
