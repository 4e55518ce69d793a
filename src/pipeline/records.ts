/**
 * The run directory's JSONL records. Each is read back through its schema, so a damaged or hand-edited
 * file fails with file:line and the field path instead of being silently used.
 */
import { z } from "zod";

const nullableNumber = z.number().nullable();
const tokenIds = z.array(z.number().int().min(0));

/** A sample as drawn: its text, its token ids (EOS excluded), log pi at temperature 1 (null: unknown). */
const sampleSchema = z.strictObject({
  text: z.string(),
  tokens: tokenIds,
  logprob: nullableNumber,
  finished: z.boolean(),
});

export const sampleRowSchema = z.strictObject({
  id: z.string(),
  prompt: z.string(),
  gold: z.string().optional(),
  /** null: a sample the sampler failed to produce (never a candidate). */
  samples: z.array(sampleSchema.nullable()),
  /** pairs.rule prompted: pi_t's samples for the prompt under the iteration's worse-answer prefix. */
  negatives: z.array(sampleSchema.nullable()).optional(),
});
export type SampleRow = z.infer<typeof sampleRowSchema>;

export const annotationRowSchema = z.strictObject({
  id: z.string(),
  prompt: z.string(),
  candidates: z.array(
    z.strictObject({
      id: z.string(),
      source: z.enum(["teacher", "student"]),
      text: z.string(),
      score: nullableNumber,
      winRate: nullableNumber,
      defect: z.boolean(),
    }),
  ),
});
export type AnnotationRow = z.infer<typeof annotationRowSchema>;

export const pairRowSchema = z.strictObject({
  promptId: z.string(),
  chosen: z.string(),
  rejected: z.string(),
  chosenSource: z.enum(["teacher", "student"]),
  rejectedSource: z.enum(["teacher", "student"]),
  rule: z.enum(["score", "win-rate", "spin", "offline", "prompted", "mcts"]),
  margin: nullableNumber,
  target: nullableNumber,
  iteration: z.number().int(),
  replayedFrom: z.number().int().optional(),
  /** Reward-augmented pairs: the quality goal the prompt is conditioned on. */
  goal: z.number().optional(),
  /** The user prompt the pair answers (with the goal written in, for prefix conditioning). */
  prompt: z.string(),
  /** Reward-augmented pairs conditioned by a system message: that message, before `prompt`. */
  system: z.string().optional(),
  chosenText: z.string(),
  rejectedText: z.string(),
  chosenWinRate: nullableNumber,
  rejectedWinRate: nullableNumber,
  /** selm: a sample of pi_t for the prompt, the response the optimism term pushes from. */
  exploreText: z.string().optional(),
  /** The ids the pair is scored and trained on: the prompt as sampled, the responses as sampled. */
  promptIds: tokenIds,
  chosenIds: tokenIds,
  rejectedIds: tokenIds,
  exploreIds: tokenIds.optional(),
});
export type PairRow = z.infer<typeof pairRowSchema>;

/**
 * A line of pairs.trl.jsonl, the external-trainer contract (README "External trainers"): the text,
 * the exact token ids that were sampled and judged (the keys TRL's DPO collator takes), and the
 * reference log-probs computed on exactly those ids. `target` (DNO's soft label) and the win rates
 * (SPPO) are there for the objectives that use them.
 */
export const trlRowSchema = z.strictObject({
  prompt: z.string(),
  /** A system message before `prompt` (reward-augmented DPO's goal); prompt_ids hold both. */
  system: z.string().optional(),
  chosen: z.string(),
  rejected: z.string(),
  prompt_ids: tokenIds,
  chosen_ids: tokenIds,
  rejected_ids: tokenIds,
  ref_chosen_logps: z.number(),
  ref_rejected_logps: z.number(),
  anchor_chosen_logps: z.number().optional(),
  anchor_rejected_logps: z.number().optional(),
  target: z.number().min(0).max(1).optional(),
  chosen_win_rate: z.number().optional(),
  rejected_win_rate: z.number().optional(),
  /** selm: y_e (a sample of pi_t), its ids and its reference log-prob. */
  explore_ids: tokenIds.optional(),
  ref_explore_logps: z.number().optional(),
});
export type TrlRow = z.infer<typeof trlRowSchema>;

export const evalRowSchema = z.strictObject({
  id: z.string(),
  prompt: z.string(),
  /** null: a sample the sampler failed to produce (not judged). */
  samples: z.array(z.string().nullable()),
  vsPrev: z.array(nullableNumber),
  vsInitial: z.array(nullableNumber),
  vsTeacher: z.array(nullableNumber),
});
export type EvalRow = z.infer<typeof evalRowSchema>;

/** One training step as logged. */
export interface TrainLogRow {
  step: number;
  lr: number;
  loss: number;
  /** Mean implicit reward margin beta * (lr(y_w) - lr(y_l)) of the batch; null for SFT. */
  margin: number | null;
}

/** One evaluation of pi_{t+1} (pi_1 at t = 0) on the held-out prompts: a line of metrics.jsonl. */
export interface EvalResult {
  t: number;
  winrate_vs_prev: number | null;
  winrate_vs_initial: number | null;
  winrate_vs_teacher: number | null;
  /** AlpacaEval 2.0's length-controlled win rate against the teacher (src/eval); null without gold answers. */
  lc_winrate_vs_teacher: number | null;
  standard_errors: { vs_prev: number | null; vs_initial: number | null; vs_teacher: number | null };
  validation_winrate_vs_initial: number | null;
  /** Mean response length in characters (code points). */
  avg_length: number;
  /** Task metrics from `task_metrics` (the demo: accuracy, exploitability, style frequencies). */
  metrics: Record<string, number>;
}

/** The mixture of iterates pi_1..pi_T evaluated like an iterate; vs_prev is against the last iterate. */
export type MixtureEvalResult = Omit<EvalResult, "t" | "validation_winrate_vs_initial"> & {
  /** T, the number of iterates mixed. */
  iterates: number;
};

/** A line of an offline preference file (pairs.offline_data): a prompt and two judged responses. */
export const offlinePreferenceSchema = z.strictObject({
  id: z.union([z.string(), z.number()]).optional(),
  prompt: z.string(),
  chosen: z.string(),
  rejected: z.string(),
});
