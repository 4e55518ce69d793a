import { z } from "zod";
import { pairwiseWinRates, type WinRateMatrix, winRateEstimates, winRatesFromScores } from "./adapters.js";
import type { Oracle } from "./types.js";

/** One line of `dno judge` input. */
export const judgeItemSchema = z
  .object({
    id: z.union([z.string(), z.number()]),
    prompt: z.string(),
    candidates: z.array(z.string()).min(1),
    gold_index: z.number().int().min(0).optional(),
  })
  .superRefine((item, ctx) => {
    if (item.gold_index !== undefined && item.gold_index >= item.candidates.length) {
      ctx.addIssue({
        code: "custom",
        path: ["gold_index"],
        message: `must be below the number of candidates (${item.candidates.length})`,
      });
    }
  });

export type JudgeItem = z.infer<typeof judgeItemSchema>;

/** One line of `dno judge` output. */
export interface JudgeRow {
  id: string | number;
  /** Pointwise: rubric scores. Pairwise: win-rate estimates r(y_i) = mean_j P(y_i > y_j). Null where failed. */
  scores: (number | null)[];
  /** W[i][j] = P(candidate i > candidate j); pointwise: from the scores through the link. */
  win_rate: WinRateMatrix;
  /** With two candidates (any mode): P(candidates[0] > candidates[1]), null when failed. */
  preference?: number | null;
  gold_index?: number;
  /** Why some or all of this line's judgments failed; null when none did. */
  failed: string | null;
}

/** Judges one item: one scoring call (pointwise) or every unordered pair (pairwise). */
export async function judgeItem(oracle: Oracle, item: JudgeItem): Promise<JudgeRow> {
  const gold = item.gold_index === undefined ? {} : { gold_index: item.gold_index };
  if (oracle.mode === "pointwise") {
    const r = await oracle.score(item.prompt, item.candidates);
    const matrix = winRatesFromScores(r.scores, oracle.link);
    return {
      id: item.id,
      scores: r.scores,
      win_rate: matrix,
      ...preferenceOf(matrix),
      ...gold,
      failed: r.failed ?? null,
    };
  }
  const { matrix, failed } = await pairwiseWinRates(oracle.compare, item.prompt, item.candidates);
  return {
    id: item.id,
    scores: winRateEstimates(matrix),
    win_rate: matrix,
    ...preferenceOf(matrix),
    ...gold,
    failed: failed ?? null,
  };
}

/** The `preference` key: present exactly when there are two candidates, whatever the oracle's mode. */
function preferenceOf(matrix: WinRateMatrix): { preference?: number | null } {
  return matrix.length === 2 ? { preference: matrix[0]![1] ?? null } : {};
}

export interface JudgeAllOptions {
  /** Items judged at once; the oracle's own limit bounds the requests. */
  parallelItems: number;
  onItem?: (row: JudgeRow) => void;
}

/**
 * Judges every item, rows in input order. Once the oracle's budget is exhausted no new item is started;
 * those left get `failed: "budget exhausted: not judged"`. A fatal error (wrong key, model or URL)
 * stops new items and is thrown once the items in flight have finished.
 */
export async function judgeAll(
  oracle: Oracle,
  items: readonly JudgeItem[],
  options: JudgeAllOptions,
): Promise<JudgeRow[]> {
  const rows = new Array<JudgeRow>(items.length);
  let next = 0;
  let fatal: unknown;
  const worker = async () => {
    while (fatal === undefined && next < items.length) {
      const i = next++;
      const item = items[i]!;
      if (oracle.usage().budgetExhausted) {
        const k = item.candidates.length;
        const matrix = Array.from({ length: k }, (_, a) =>
          Array.from({ length: k }, (_, b) => (a === b ? 0.5 : null)),
        );
        rows[i] = {
          id: item.id,
          scores: item.candidates.map(() => null),
          win_rate: matrix,
          ...preferenceOf(matrix),
          ...(item.gold_index !== undefined && { gold_index: item.gold_index }),
          failed: "budget exhausted: not judged",
        };
      } else {
        try {
          rows[i] = await judgeItem(oracle, item);
        } catch (e) {
          fatal ??= e;
          return;
        }
      }
      options.onItem?.(rows[i]!);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(options.parallelItems, items.length)) }, worker),
  );
  if (fatal !== undefined) throw fatal;
  return rows;
}
