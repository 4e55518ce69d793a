/**
 * The Nash equilibrium (von Neumann winner) of the symmetric zero-sum game with payoff
 * A = P - 1/2, by linear programming.
 *
 * The game's value is 0 (A is antisymmetric), so pi* is a Nash equilibrium iff (P pi*)_y <= 1/2 for
 * every y. With B = A + 1 (every entry in [1/2, 3/2], value 1), the column player's LP
 *     maximise 1^T w  subject to  B w <= 1,  w >= 0
 * has optimum 1 and pi* = w / 1^T w. b = 1 >= 0 makes w = 0 a feasible basis, so a single-phase
 * tableau simplex suffices; Bland's rule rules out cycling on degenerate pivots.
 */
import { exploitability } from "./policy.js";

export interface NashSolution {
  policy: Float64Array;
  /** max_y P(y > pi*) - 1/2, computed from P directly: the certificate. */
  exploitability: number;
  pivots: number;
}

/** Exploitability the solver certifies; larger means the LP went wrong, and it throws. */
export const NASH_CERTIFICATE = 1e-9;

const EPS = 1e-12;

export function solveNash(preference: readonly Float64Array[]): NashSolution {
  const n = preference.length;
  // Tableau: n constraint rows of [B | I | 1] and the objective row [-1 .. | 0 .. | 0].
  const cols = 2 * n + 1;
  const t: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const row = new Float64Array(cols);
    for (let j = 0; j < n; j++) row[j] = preference[i]![j]! + 0.5;
    row[n + i] = 1;
    row[2 * n] = 1;
    t.push(row);
  }
  const objective = new Float64Array(cols);
  for (let j = 0; j < n; j++) objective[j] = -1;
  t.push(objective);
  const basis = Array.from({ length: n }, (_, i) => n + i);

  let pivots = 0;
  for (;;) {
    let enter = -1;
    for (let j = 0; j < 2 * n; j++) {
      if (objective[j]! < -EPS) {
        enter = j;
        break;
      }
    }
    if (enter < 0) break;
    let leave = -1;
    let bestRatio = Infinity;
    for (let i = 0; i < n; i++) {
      const a = t[i]![enter]!;
      if (a <= EPS) continue;
      const ratio = t[i]![2 * n]! / a;
      if (ratio < bestRatio - EPS || (Math.abs(ratio - bestRatio) <= EPS && basis[i]! < basis[leave]!)) {
        bestRatio = ratio;
        leave = i;
      }
    }
    if (leave < 0) throw new Error("solveNash: LP unbounded, which cannot happen for a valid game");
    pivot(t, leave, enter);
    basis[leave] = enter;
    if (++pivots > 50 * (n + 10)) throw new Error("solveNash: simplex did not terminate");
  }

  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) if (basis[i]! < n) w[basis[i]!] = Math.max(0, t[i]![2 * n]!);
  const total = w.reduce((a, b) => a + b, 0);
  const policy = w.map((v) => v / total);
  const certificate = exploitability(preference, policy);
  if (!(certificate <= NASH_CERTIFICATE)) {
    throw new Error(`solveNash: solution has exploitability ${certificate} > ${NASH_CERTIFICATE}`);
  }
  return { policy, exploitability: certificate, pivots };
}

function pivot(t: Float64Array[], r: number, c: number): void {
  const row = t[r]!;
  const inv = 1 / row[c]!;
  for (let j = 0; j < row.length; j++) row[j] *= inv;
  row[c] = 1;
  for (let i = 0; i < t.length; i++) {
    if (i === r) continue;
    const other = t[i]!;
    const f = other[c]!;
    if (f === 0) continue;
    for (let j = 0; j < other.length; j++) other[j] -= f * row[j];
    other[c] = 0;
  }
}
