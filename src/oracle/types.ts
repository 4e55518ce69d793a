import type { Link } from "./adapters.js";

/**
 * Preference oracles: where DNO's general preferences P(y > y' | x) come from.
 * A judgment that fails (transport error, unparseable answer, exhausted budget) carries `null` and a
 * reason; callers must skip it, never turn it into a label.
 */

/** Scores for a whole candidate set judged in one call (the paper's batched pointwise mode). */
export interface ScoreResult {
  /** One score per candidate, in the order given; null where the judgment failed. */
  scores: (number | null)[];
  /** Why some or all scores are null. */
  failed?: string;
}

/** P(a > b | prompt) with the reason when it failed. */
export interface PreferenceResult {
  preference: number | null;
  failed?: string;
}

export interface ScoringOracle {
  score(prompt: string, candidates: readonly string[]): Promise<ScoreResult>;
}

export interface PreferenceOracle {
  /** P(a > b | prompt) in [0, 1]; null when the judgment failed. */
  prefer(prompt: string, a: string, b: string): Promise<number | null>;
}

/** Counters over the oracle's life; tokens as reported by the server. */
export interface OracleUsage {
  /** Requests sent (every attempt, retries included). */
  calls: number;
  retries: number;
  /** Judgments answered from the cache (nothing paid). */
  cacheHits: number;
  /** Judgments that failed and were not turned into a result. */
  failures: number;
  promptTokens: number;
  completionTokens: number;
  budgetExhausted: boolean;
}

export function emptyUsage(): OracleUsage {
  return {
    calls: 0,
    retries: 0,
    cacheHits: 0,
    failures: 0,
    promptTokens: 0,
    completionTokens: 0,
    budgetExhausted: false,
  };
}

/** A message of a judge conversation after its system prompt. */
export interface JudgeMessage {
  role: "user" | "assistant";
  content: string;
}

/** A judge's answer in words; null with the reason when the call failed. */
export interface TextJudgment {
  text: string | null;
  failed?: string;
}

/** The native judging mode: whole candidate sets scored at once, or pairs compared. */
export type OracleMode = "pointwise" | "pairwise";

/** What `createOracle` returns: both views of one oracle, whichever is native. */
export interface Oracle extends ScoringOracle, PreferenceOracle {
  readonly mode: OracleMode;
  /** How this oracle turns two scores into a preference. */
  readonly link: Link;
  /** `prefer` with the failure reason kept. */
  compare(prompt: string, a: string, b: string): Promise<PreferenceResult>;
  /**
   * Answers a benchmark's own judge prompt (MT-Bench, Arena-Hard) in words; present on oracles that
   * can (LLM judges, programmatic modules exporting `judge`), absent on reward models.
   */
  ask?(system: string, messages: readonly JudgeMessage[]): Promise<TextJudgment>;
  usage(): OracleUsage;
  /** Releases the cache file and connections; the oracle must not be used afterwards. */
  close(): void;
}
