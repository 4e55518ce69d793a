/**
 * Quantities of a tabular policy pi (a probability vector over a prompt's responses) in a preference
 * game with matrix P: win rates, P(pi > pi'), exploitability.
 */

/** r(y) = E_{y' ~ pi} P(y > y') = (P pi)_y: Algorithm 1's r_t when pi = pi_t. */
export function winRates(preference: readonly Float64Array[], pi: ArrayLike<number>): Float64Array {
  const n = preference.length;
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = preference[i]!;
    let s = 0;
    for (let j = 0; j < n; j++) s += row[j]! * pi[j]!;
    r[i] = s;
  }
  return r;
}

/** P(pi > pi') = E_{y ~ pi, y' ~ pi'} P(y > y'). */
export function preferenceBetween(
  preference: readonly Float64Array[],
  pi: ArrayLike<number>,
  other: ArrayLike<number>,
): number {
  const r = winRates(preference, other);
  let s = 0;
  for (let i = 0; i < r.length; i++) s += pi[i]! * r[i]!;
  return s;
}

/**
 * max_y P(y > pi) - 1/2: 0 exactly at a Nash equilibrium (von Neumann winner), up to 1/2. It is never
 * negative (max_y P(y > pi) >= P(pi > pi) = 1/2), so round-off below 0 is reported as 0.
 */
export function exploitability(preference: readonly Float64Array[], pi: ArrayLike<number>): number {
  const r = winRates(preference, pi);
  let best = -Infinity;
  for (const v of r) best = Math.max(best, v);
  return Math.max(0, best - 0.5);
}

/** Total-variation distance (1/2) sum_y |pi(y) - pi'(y)|. */
export function totalVariation(pi: ArrayLike<number>, other: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < pi.length; i++) s += Math.abs(pi[i]! - other[i]!);
  return s / 2;
}
