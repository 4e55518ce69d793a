import { Rng } from "../core/rng.js";
import { sigmoid } from "./glm.js";
import { quantileSorted } from "./winrate.js";

/**
 * Bradley-Terry scores as arena-hard-auto (v0.1) fits them: a logistic regression without intercept on
 * battles, the row of a battle +ln 10 at player a and -ln 10 at player b, label 1 when a wins, a tie
 * counted as one win for each side (so a tie is the label 1/2), optional standardised style columns.
 * Without style control the fit is unpenalised (the baseline's coefficient is pinned at 0, which only
 * fixes the free shift); with it, scikit-learn's default L2 penalty (C = 1) on every coefficient over the
 * duplicated rows, exactly as arena-hard fits it. Ratings are Elo: 400 * coefficient, the baseline at 1000.
 */

export interface Battle {
  a: number;
  b: number;
  /** 1: a wins, 0: b wins, 0.5: tie. */
  outcome: number;
  /** Style features of the battle (already standardised), when the fit controls for style. */
  style?: readonly number[];
}

export interface BradleyTerryFit {
  /** Elo rating per player, the baseline at 1000. */
  elo: number[];
  /** Coefficients of the style columns (none without style control). */
  style: number[];
}

const LN10 = Math.log(10);

/** Solves the symmetric positive definite system H d = g (Cholesky); null when H is not positive definite. */
function solveSpd(h: Float64Array, g: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = h[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 1e-300)) return null;
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j]!;
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = g[i]!;
    for (let k = 0; k < i; k++) s -= l[i * n + k]! * y[k]!;
    y[i] = s / l[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[k]!;
    x[i] = s / l[i * n + i]!;
  }
  return x;
}

/**
 * Minimises (l2 / 2) |w|^2 + 2 * sum_battles [softplus(z) - y z] (the factor 2: arena-hard duplicates
 * every battle) by Newton's method with backtracking. Columns: the players except `pinned` (when given),
 * then the style features.
 */
function newtonLogistic(
  battles: readonly Battle[],
  players: number,
  styleDims: number,
  l2: number,
  pinned: number | null,
): Float64Array {
  const playerColumn = (p: number): number =>
    pinned === null ? p : p < pinned ? p : p > pinned ? p - 1 : -1;
  const nPlayers = pinned === null ? players : players - 1;
  const d = nPlayers + styleDims;
  const rows = battles.map((battle) => {
    const x = new Float64Array(d);
    const ca = playerColumn(battle.a);
    const cb = playerColumn(battle.b);
    if (ca >= 0) x[ca]! += LN10;
    if (cb >= 0) x[cb]! -= LN10;
    for (let k = 0; k < styleDims; k++) x[nPlayers + k] = battle.style![k]!;
    return x;
  });
  const z = (w: Float64Array, x: Float64Array) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[j]! * w[j]!;
    return s;
  };
  const objective = (w: Float64Array): number => {
    let f = 0;
    for (let j = 0; j < d; j++) f += (l2 / 2) * w[j]! ** 2;
    battles.forEach((battle, i) => {
      const t = z(w, rows[i]!);
      f += 2 * ((t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t))) - battle.outcome * t);
    });
    return f;
  };
  let w = new Float64Array(d);
  let f = objective(w);
  for (let iteration = 0; iteration < 200; iteration++) {
    const g = new Float64Array(d);
    const h = new Float64Array(d * d);
    for (let j = 0; j < d; j++) {
      g[j] = l2 * w[j]!;
      h[j * d + j] = l2 + 1e-12;
    }
    battles.forEach((battle, i) => {
      const x = rows[i]!;
      const q = sigmoid(z(w, x));
      for (let j = 0; j < d; j++) {
        if (x[j] === 0) continue;
        g[j]! += 2 * (q - battle.outcome) * x[j]!;
        for (let k = 0; k < d; k++) h[j * d + k]! += 2 * q * (1 - q) * x[j]! * x[k]!;
      }
    });
    const step = solveSpd(h, g, d);
    if (!step) break;
    let t = 1;
    let next = w;
    let fNext = f;
    for (; t > 1e-10; t /= 2) {
      next = w.map((v, j) => v - t * step[j]!);
      fNext = objective(next);
      if (fNext <= f) break;
    }
    const moved = Math.max(...next.map((v, j) => Math.abs(v - w[j]!)));
    w = next;
    const decrease = f - fNext;
    f = fNext;
    if (moved < 1e-12 || decrease <= 1e-14 * (1 + Math.abs(f))) break;
  }
  return w;
}

/**
 * Bradley-Terry Elo ratings of `players` from their battles. `baseline` anchors the scale at 1000; a
 * player without battles keeps the baseline's rating (unpenalised) or 0 logit (penalised).
 */
export function fitBradleyTerry(
  battles: readonly Battle[],
  players: number,
  baseline: number,
  options: { styleDims?: number; l2?: number } = {},
): BradleyTerryFit {
  const styleDims = options.styleDims ?? 0;
  const l2 = options.l2 ?? (styleDims > 0 ? 1 : 0);
  const w = newtonLogistic(battles, players, styleDims, l2, l2 === 0 ? baseline : null);
  const coefficient = (p: number): number =>
    l2 === 0 ? (p === baseline ? 0 : w[p < baseline ? p : p - 1]!) : w[p]!;
  const anchor = coefficient(baseline);
  const nPlayers = l2 === 0 ? players - 1 : players;
  return {
    elo: Array.from({ length: players }, (_, p) => 1000 + 400 * (coefficient(p) - anchor)),
    style: Array.from(w.subarray(nPlayers)),
  };
}

/** P(a player rated `elo` beats one rated `against`): 1 / (1 + 10^((against - elo) / 400)). */
export function eloWinRate(elo: number, against: number): number {
  return 1 / (1 + 10 ** ((against - elo) / 400));
}

export interface BootstrapWinRate {
  /** Win rate of `player` against the baseline from the fit on all battles. */
  winRate: number;
  /** Percentile bootstrap interval [2.5%, 97.5%] (by default) of the win rate. */
  ci: [number, number];
  elo: number;
  style: number[];
}

/**
 * arena-hard-auto's leaderboard number: the fitted win rate of `player` against `baseline`, with a
 * percentile interval from `rounds` refits on battles resampled with replacement (seeded).
 */
export function bootstrapWinRate(
  battles: readonly Battle[],
  players: number,
  player: number,
  baseline: number,
  options: { rounds?: number; seed?: number; confidence?: number; styleDims?: number } = {},
): BootstrapWinRate {
  const rounds = options.rounds ?? 100;
  const confidence = options.confidence ?? 0.95;
  const fitOptions = { styleDims: options.styleDims ?? 0 };
  const full = fitBradleyTerry(battles, players, baseline, fitOptions);
  const rng = Rng.derive(options.seed ?? 0, "arena-hard-bootstrap");
  const rates = new Float64Array(rounds);
  for (let r = 0; r < rounds; r++) {
    const sample = Array.from({ length: battles.length }, () => battles[rng.int(battles.length)]!);
    const fit = fitBradleyTerry(sample, players, baseline, fitOptions);
    rates[r] = eloWinRate(fit.elo[player]!, fit.elo[baseline]!);
  }
  rates.sort();
  const alpha = (1 - confidence) / 2;
  return {
    winRate: eloWinRate(full.elo[player]!, full.elo[baseline]!),
    ci: [quantileSorted(rates, alpha), quantileSorted(rates, 1 - alpha)],
    elo: full.elo[player]!,
    style: full.style,
  };
}
