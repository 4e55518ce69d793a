/**
 * Win-rate estimates r^(x, y) over a prompt's candidate set {y^1..y^K, y_gold}.
 *
 * Algorithm 1's reward is r_t(x, y) = E_{y' ~ pi_t(.|x)} P(y > y' | x). With K samples from pi_t as the
 * opponents, r^(y_i) = (1/|J_i|) sum_{j in J_i} P(y_i > y_j): J_i is the opponents without y_i itself,
 * or with it (its self term P(y_i > y_i) = 1/2) when `includeSelf` is set. The gold response is a
 * candidate (it gets an estimate) but not an opponent unless listed in `opponents`, since it is not a
 * sample of pi_t. Failed judgments (null / NaN) are skipped; a candidate with no judged opponent gets null.
 */

/** pref[i][j] = P(y_i > y_j | x); null where the judgment failed. */
export type PreferenceMatrix = readonly (readonly (number | null)[])[];

export interface WinRateOptions {
  /** Indices of the candidates drawn from pi_t (the opponents); default: every candidate. */
  opponents?: readonly number[];
  /** Count the self term P(y_i > y_i) = 1/2 when y_i is an opponent; default false. */
  includeSelf?: boolean;
}

export function winRateEstimates(pref: PreferenceMatrix, options: WinRateOptions = {}): (number | null)[] {
  const n = pref.length;
  for (let i = 0; i < n; i++) {
    if (pref[i]!.length !== n)
      throw new RangeError(`winRateEstimates: row ${i} has ${pref[i]!.length} entries, expected ${n}`);
  }
  const opponents = options.opponents ?? Array.from({ length: n }, (_, j) => j);
  for (const j of opponents) {
    if (!(Number.isInteger(j) && j >= 0 && j < n))
      throw new RangeError(`winRateEstimates: opponent index ${j} out of range`);
  }
  return pref.map((row, i) => {
    let sum = 0;
    let count = 0;
    for (const j of opponents) {
      if (j === i) {
        if (options.includeSelf) {
          sum += 0.5;
          count++;
        }
        continue;
      }
      const p = row[j];
      if (p === null || p === undefined || Number.isNaN(p)) continue;
      sum += p;
      count++;
    }
    return count === 0 ? null : sum / count;
  });
}

/**
 * Pairwise preferences implied by pointwise scores (the paper's batched 6-point rubric):
 * P(y_i > y_j) = 1 if s_i > s_j, 1/2 on a tie, 0 otherwise; null where either score is missing.
 */
export function preferencesFromScores(scores: readonly (number | null)[]): (number | null)[][] {
  return scores.map((si, i) =>
    scores.map((sj, j) => {
      if (i === j) return 0.5;
      if (si === null || sj === null) return null;
      return si > sj ? 1 : si < sj ? 0 : 0.5;
    }),
  );
}
