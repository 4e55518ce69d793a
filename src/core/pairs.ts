/**
 * Pair construction for DNO-Prct (Algorithm 2, step 4) and its variants. Pure and seeded: ties are
 * broken by keys drawn from Rng.derive(seed, "pairs", iteration, promptId), so a prompt's pairs do not
 * depend on which other prompts are processed, or in which order.
 *
 * Every pair records its provenance (teacher = the gold response, student = a sample of pi_t) so a
 * run can report the paper's Table 2 composition.
 */
import { DnoError } from "../util/errors.js";
import { sigmoid } from "./prob.js";
import { Rng } from "./rng.js";

export type Source = "teacher" | "student";

/** One response to a prompt, as annotated. */
export interface Candidate {
  /** Unique within the prompt. */
  id: string;
  source: Source;
  /** Annotator's score (6-point rubric), null when the judgment failed. */
  score?: number | null;
  /** Win-rate estimate r^(x, y) (see winrate.ts), null when unknown. */
  winRate?: number | null;
  /** Degenerate sample (defects.ts): never a positive, always an admissible negative. */
  defect?: boolean;
}

export interface Pair {
  promptId: string;
  /** Candidate ids of y_w and y_l. */
  chosen: string;
  rejected: string;
  chosenSource: Source;
  rejectedSource: Source;
  /** offline: from an offline preference file (pairs.offline_data); prompted: see prompted-pairs.ts; mcts: src/pipeline/search.ts. */
  rule: "score" | "win-rate" | "spin" | "offline" | "prompted" | "mcts";
  /** Score (or win-rate) difference of chosen over rejected; null when a side was not judged. */
  margin: number | null;
  /** Algorithm 1's soft label sigma(r^(y_w) - r^(y_l)) when both win rates are known, else null. */
  target: number | null;
  /** The iteration t whose data produced the pair. */
  iteration: number;
  /** Set on a replayed copy: the iteration the pair was first built in. */
  replayedFrom?: number;
  /** Reward-augmented pairs (reward-augmented.ts): the quality goal the prompt is conditioned on. */
  goal?: number;
}

export interface MarginRuleOptions {
  /** Only candidates scoring at least this may be positives. */
  minPositive?: number;
  /** Required margin of a teacher positive over its negative. */
  margin?: number;
  /** Required margin when the positive is the student's own sample. */
  studentMargin?: number;
  /** Pairs per prompt (best positive first, each against the worst admissible negatives); default 1. */
  pairsPerPrompt?: number;
  /** Who may be a positive: both by default; ["teacher"] is the paper's DNO-Restrictive. */
  positiveSources?: readonly Source[];
}

/** The paper's rule: positives score 5 or 6 (of 6), negatives >= 2 lower, >= 1 when the positive is a student sample. */
export const PAPER_SCORE_RULE = { minPositive: 5, margin: 2, studentMargin: 1 } as const;

/** A large-margin rule on win-rate ranks: Algorithm 2 approximates Algorithm 1 when sigma(r(y+) - r(y-)) is near 1. */
export const DEFAULT_WIN_RATE_RULE = { minPositive: 0.5, margin: 0.3, studentMargin: 0.3 } as const;

/** Algorithm 2's score rule over one prompt's candidates. */
export function scorePairs(
  promptId: string,
  candidates: readonly Candidate[],
  options: MarginRuleOptions,
  seed: number,
  iteration: number,
): Pair[] {
  return marginPairs(
    promptId,
    candidates,
    (c) => c.score ?? null,
    options,
    PAPER_SCORE_RULE,
    "score",
    seed,
    iteration,
  );
}

/** The large-margin rule on win-rate estimates r^ over one prompt's candidates. */
export function winRatePairs(
  promptId: string,
  candidates: readonly Candidate[],
  options: MarginRuleOptions,
  seed: number,
  iteration: number,
): Pair[] {
  return marginPairs(
    promptId,
    candidates,
    (c) => c.winRate ?? null,
    options,
    DEFAULT_WIN_RATE_RULE,
    "win-rate",
    seed,
    iteration,
  );
}

function marginPairs(
  promptId: string,
  candidates: readonly Candidate[],
  value: (c: Candidate) => number | null,
  options: MarginRuleOptions,
  defaults: { minPositive: number; margin: number; studentMargin: number },
  rule: "score" | "win-rate",
  seed: number,
  iteration: number,
): Pair[] {
  // `??` rather than a spread, so that an option given as undefined keeps its default.
  const minPositive = options.minPositive ?? defaults.minPositive;
  const margin = options.margin ?? defaults.margin;
  const studentMargin = options.studentMargin ?? defaults.studentMargin;
  const pairsPerPrompt = options.pairsPerPrompt ?? 1;
  const positiveSources = options.positiveSources ?? ["teacher", "student"];
  if (!(Number.isInteger(pairsPerPrompt) && pairsPerPrompt >= 1)) {
    throw new DnoError(`pairs: pairsPerPrompt must be a positive integer, got ${pairsPerPrompt}`);
  }
  checkIds(promptId, candidates);
  const tieKey = tieBreakKeys(candidates, seed, iteration, promptId);
  const idx = candidates.map((_, i) => i);

  const positives = idx
    .filter((i) => {
      const c = candidates[i]!;
      const v = value(c);
      return !c.defect && v !== null && v >= minPositive && positiveSources.includes(c.source);
    })
    .sort((a, b) => value(candidates[b]!)! - value(candidates[a]!)! || tieKey[a]! - tieKey[b]!);
  // Defects first (automatic negatives), then the lowest value; unjudged non-defects are never negatives.
  const negatives = idx
    .filter((i) => candidates[i]!.defect || value(candidates[i]!) !== null)
    .sort((a, b) => {
      const ca = candidates[a]!;
      const cb = candidates[b]!;
      if (!!ca.defect !== !!cb.defect) return ca.defect ? -1 : 1;
      const va = value(ca) ?? -Infinity;
      const vb = value(cb) ?? -Infinity;
      return va - vb || tieKey[a]! - tieKey[b]!;
    });

  const pairs: Pair[] = [];
  for (const p of positives) {
    const pos = candidates[p]!;
    const need = pos.source === "student" ? studentMargin : margin;
    for (const q of negatives) {
      if (pairs.length === pairsPerPrompt) return pairs;
      if (q === p) continue;
      const neg = candidates[q]!;
      const vn = value(neg);
      const diff = vn === null ? null : value(pos)! - vn;
      if (!neg.defect && (diff === null || diff < need)) continue;
      pairs.push(makePair(promptId, pos, neg, rule, diff, iteration));
    }
  }
  return pairs;
}

/**
 * SPIN's pairs: the gold (teacher) response over the policy's own samples, regardless of judgments;
 * the rejected samples are drawn without replacement, `pairsPerPrompt` of them (default 1).
 */
export function spinPairs(
  promptId: string,
  candidates: readonly Candidate[],
  seed: number,
  iteration: number,
  pairsPerPrompt = 1,
): Pair[] {
  checkIds(promptId, candidates);
  const gold = candidates.find((c) => c.source === "teacher");
  if (gold === undefined) return [];
  const students = candidates.filter((c) => c.source === "student");
  Rng.derive(seed, "pairs", iteration, promptId).shuffle(students);
  return students
    .slice(0, pairsPerPrompt)
    .map((s) => makePair(promptId, gold, s, "spin", difference(gold.score, s.score), iteration));
}

function makePair(
  promptId: string,
  pos: Candidate,
  neg: Candidate,
  rule: Pair["rule"],
  margin: number | null,
  iteration: number,
): Pair {
  const rw = pos.winRate;
  const rl = neg.winRate;
  return {
    promptId,
    chosen: pos.id,
    rejected: neg.id,
    chosenSource: pos.source,
    rejectedSource: neg.source,
    rule,
    margin,
    target: rw === null || rw === undefined || rl === null || rl === undefined ? null : sigmoid(rw - rl),
    iteration,
  };
}

function difference(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined ? null : a - b;
}

function checkIds(promptId: string, candidates: readonly Candidate[]): void {
  const seen = new Set<string>();
  for (const c of candidates) {
    if (seen.has(c.id)) throw new DnoError(`pairs: prompt ${promptId} has two candidates with id "${c.id}"`);
    seen.add(c.id);
  }
}

function tieBreakKeys(
  candidates: readonly Candidate[],
  seed: number,
  iteration: number,
  promptId: string,
): number[] {
  const rng = Rng.derive(seed, "pairs", iteration, promptId);
  return candidates.map(() => rng.float());
}

/** The paper's Table 2: who beats whom among the pairs. */
export interface PairComposition {
  total: number;
  teacher_over_student: number;
  student_over_teacher: number;
  student_over_student: number;
  teacher_over_teacher: number;
}

export function pairComposition(pairs: readonly Pair[]): PairComposition {
  const out: PairComposition = {
    total: pairs.length,
    teacher_over_student: 0,
    student_over_teacher: 0,
    student_over_student: 0,
    teacher_over_teacher: 0,
  };
  for (const p of pairs) out[`${p.chosenSource}_over_${p.rejectedSource}`]++;
  return out;
}
