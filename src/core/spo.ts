/**
 * SPO's self-supervised preference-degree loss (Li et al. 2024, arXiv 2409.17791), added with a weight
 * to any pairwise objective. Key contents of a response (RAKE phrases, or single letters for answers
 * with no words) are removed in different amounts; the model is asked how much was removed, and from
 * which side of the pair, and is trained by cross-entropy on the answer.
 *
 * Classes: a chosen response with k of its key contents removed is class k, a rejected one is class
 * K + k (k = 0..K-1, K = `degrees`): 2K degrees of preference, from the intact chosen response down to
 * the most damaged rejected one. The model "tells the degree" by the label it would write: the logit
 * of class c is log pi(label_c | question(x, modified response)), a sequence log-prob like every other
 * quantity the engine gives, so the loss and its gradient stay pure functions of sequence log-probs.
 */
import { DnoError } from "../util/errors.js";
import { logSumExp } from "./prob.js";
import type { Rng } from "./rng.js";

export type KeyUnit = "rake" | "letters";

export interface SpoOptions {
  /** K: 0..K-1 key contents removed. */
  degrees: number;
  unit: KeyUnit;
  /** Modified copies per response (distinct degrees), 1..K. */
  samplesPerResponse: number;
}

/** A character range [start, end) of a response. */
export type Span = readonly [number, number];

/** Words RAKE splits candidate phrases on (a short English list; phrases never span them). */
const STOPWORDS = new Set(
  (
    "a about above after again against all am an and any are as at be because been before being below between both but by " +
    "can could did do does doing down during each few for from further had has have having he her here hers him his how i if " +
    "in into is it its itself just me more most my no nor not now of off on once only or other our ours out over own same she " +
    "should so some such than that the their theirs them then there these they this those through to too under until up very " +
    "was we were what when where which while who whom why will with would you your yours"
  ).split(" "),
);

/**
 * RAKE (Rose et al. 2010): candidate phrases are the runs of words between stopwords and punctuation;
 * a word scores degree/frequency (degree: the total length, in words, of the phrases it occurs in);
 * a phrase scores the sum of its words. Returns the phrases' spans, best first (ties: earlier first).
 */
export function rakePhrases(text: string): Span[] {
  const phrases: { start: number; end: number; words: string[] }[] = [];
  let current: { start: number; end: number; words: string[] } | null = null;
  const close = () => {
    if (current) phrases.push(current);
    current = null;
  };
  for (const m of text.matchAll(/[\p{L}\p{N}'-]+|[^\s\p{L}\p{N}'-]+/gu)) {
    const token = m[0];
    const word = token.toLowerCase();
    if (!/[\p{L}\p{N}]/u.test(token) || STOPWORDS.has(word)) {
      close();
      continue;
    }
    if (current) {
      current.end = m.index + token.length;
      current.words.push(word);
    } else current = { start: m.index, end: m.index + token.length, words: [word] };
  }
  close();
  const degree = new Map<string, number>();
  const frequency = new Map<string, number>();
  for (const p of phrases) {
    for (const w of p.words) {
      degree.set(w, (degree.get(w) ?? 0) + p.words.length);
      frequency.set(w, (frequency.get(w) ?? 0) + 1);
    }
  }
  const score = (p: (typeof phrases)[number]) =>
    p.words.reduce((s, w) => s + degree.get(w)! / frequency.get(w)!, 0);
  return phrases
    .map((p, i) => ({ span: [p.start, p.end] as Span, score: score(p), i }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .map((p) => p.span);
}

/**
 * The removable key contents: the 2(K-1) best RAKE phrases, or every letter/digit (`letters`, for
 * short answers such as the demo's, which have no phrases to rank).
 */
export function keyContents(text: string, options: Pick<SpoOptions, "unit" | "degrees">): Span[] {
  if (options.unit === "letters") {
    return [...text.matchAll(/[\p{L}\p{N}]/gu)].map((m) => [m.index, m.index + m[0].length] as Span);
  }
  return rakePhrases(text).slice(0, 2 * (options.degrees - 1));
}

/** `text` without the given spans; the spaces around a removed phrase collapse to one. */
export function removeSpans(text: string, spans: readonly Span[]): string {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  let out = "";
  let at = 0;
  for (const [start, end] of sorted) {
    out += text.slice(at, start);
    at = end;
  }
  out += text.slice(at);
  return spans.length === 0 ? out : out.replace(/ {2,}/g, " ");
}

export interface SpoSample {
  /** The modified response the model is asked about. */
  response: string;
  /** Its class: k (chosen, k removed) or K + k (rejected, k removed). */
  label: number;
}

export function checkSpoOptions(options: SpoOptions): void {
  const { degrees, samplesPerResponse } = options;
  if (!(Number.isInteger(degrees) && degrees >= 2))
    throw new DnoError(`spo: degrees must be an integer >= 2, got ${degrees}`);
  if (!(Number.isInteger(samplesPerResponse) && samplesPerResponse >= 1 && samplesPerResponse <= degrees)) {
    throw new DnoError(
      `spo: samples per response must be an integer in 1..${degrees}, got ${samplesPerResponse}`,
    );
  }
}

/**
 * The self-supervised samples of one pair: for each of its two responses, `samplesPerResponse`
 * distinct degrees k (uniform among those the response has enough key contents for), each with a
 * uniformly drawn k-subset of its key contents removed.
 */
export function spoSamples(chosen: string, rejected: string, options: SpoOptions, rng: Rng): SpoSample[] {
  checkSpoOptions(options);
  const K = options.degrees;
  const out: SpoSample[] = [];
  for (const [text, offset] of [
    [chosen, 0],
    [rejected, K],
  ] as const) {
    const units = keyContents(text, options);
    const possible = Array.from({ length: Math.min(K, units.length + 1) }, (_, k) => k);
    const degrees = rng.shuffle(possible).slice(0, options.samplesPerResponse);
    for (const k of degrees.sort((a, b) => a - b)) {
      const removed = rng.shuffle([...units]).slice(0, k);
      out.push({ response: removeSpans(text, removed), label: offset + k });
    }
  }
  return out;
}

/** The question the model answers with a class label. */
export function spoQuestion(prompt: string, response: string): string {
  return `${prompt}\n${response}\n#`;
}

/** The label text of each of the 2K classes. */
export function spoLabels(degrees: number): string[] {
  return Array.from({ length: 2 * degrees }, (_, c) => String(c));
}

/**
 * Mean cross-entropy over m samples of the class logits z (m x C, row-major: sample i's C logits
 * z[i*C .. i*C+C-1]), times `weight`: L = weight/m sum_i -log softmax(z_i)[y_i],
 * dL/dz_ic = weight/m (softmax(z_i)_c - [c = y_i]).
 */
export function degreeLoss(
  logits: Float64Array,
  labels: readonly number[],
  classes: number,
  weight: number,
): { loss: number; grad: Float64Array } {
  const m = labels.length;
  if (logits.length !== m * classes) {
    throw new RangeError(`degree loss: ${logits.length} logits for ${m} samples x ${classes} classes`);
  }
  const grad = new Float64Array(logits.length);
  if (m === 0) return { loss: 0, grad };
  let loss = 0;
  for (let i = 0; i < m; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    const logZ = logSumExp(row);
    const y = labels[i]!;
    loss -= row[y]! - logZ;
    for (let c = 0; c < classes; c++) {
      grad[i * classes + c] = (weight / m) * (Math.exp(row[c]! - logZ) - (c === y ? 1 : 0));
    }
  }
  return { loss: (weight * loss) / m, grad };
}

/**
 * An alignment loss over the first `alignCount` sequence log-probs plus the degree loss over the rest
 * (m samples x C label log-probs): L = L_align + weight * L_degree.
 */
export function withDegreeLoss(
  align: (seqLogprobs: Float64Array) => { loss: number; grad: Float64Array },
  alignCount: number,
  labels: readonly number[],
  classes: number,
  weight: number,
): (seqLogprobs: Float64Array) => { loss: number; grad: Float64Array } {
  return (lp) => {
    if (lp.length !== alignCount + labels.length * classes) {
      throw new RangeError(
        `spo: expected ${alignCount} + ${labels.length} x ${classes} log-probs, got ${lp.length}`,
      );
    }
    const a = align(lp.subarray(0, alignCount));
    const d = degreeLoss(lp.subarray(alignCount), labels, classes, weight);
    const grad = new Float64Array(lp.length);
    grad.set(a.grad, 0);
    grad.set(d.grad, alignCount);
    return { loss: a.loss + d.loss, grad };
  };
}
