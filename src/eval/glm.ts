/**
 * L1-regularised logistic regression with soft labels, no intercept:
 *
 *   minimise  F(w) = C * sum_i s_i * [ softplus(x_i.w) - p_i * x_i.w ]  +  ||w||_1
 *
 * where p_i in [0, 1] is the soft label and s_i a sample weight. The bracket is the cross-entropy
 * -p log sigma(z) - (1 - p) log(1 - sigma(z)), i.e. exactly what duplicating each row with label 1
 * (weight p) and label 0 (weight 1 - p) gives. C multiplies the summed (not averaged) loss, as in
 * liblinear. Solved by cyclic coordinate descent with a one-dimensional Newton step, soft
 * thresholding and a backtracking line search (convex, so it converges to the global minimum).
 */

export interface SoftLabelData {
  /** Row-major design matrix, n rows of `features` columns. */
  x: Float64Array;
  features: number;
  /** Soft labels in [0, 1]. */
  p: Float64Array;
  /** Sample weights (> 0); all ones when omitted. */
  s?: Float64Array;
}

export interface FitOptions {
  maxSweeps?: number;
  /** Stop when no coordinate moves by more than this in a sweep. */
  tolerance?: number;
  /** Starting point (warm start). */
  init?: Float64Array;
}

function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function rows(data: SoftLabelData): number {
  return data.p.length;
}

function objective(data: SoftLabelData, z: Float64Array, w: Float64Array, C: number): number {
  let loss = 0;
  for (let i = 0; i < z.length; i++) loss += (data.s?.[i] ?? 1) * (softplus(z[i]!) - data.p[i]! * z[i]!);
  let l1 = 0;
  for (let j = 0; j < w.length; j++) l1 += Math.abs(w[j]!);
  return C * loss + l1;
}

/** Gradient of the smooth part, C * sum_i s_i (sigma(z_i) - p_i) x_ij, for every coordinate j. */
export function smoothGradient(data: SoftLabelData, w: Float64Array, C: number): Float64Array {
  const n = rows(data);
  const d = data.features;
  const g = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let j = 0; j < d; j++) z += data.x[i * d + j]! * w[j]!;
    const r = (data.s?.[i] ?? 1) * (sigmoid(z) - data.p[i]!);
    for (let j = 0; j < d; j++) g[j]! += C * r * data.x[i * d + j]!;
  }
  return g;
}

/** Minimiser of F for a given C (see the module comment). */
export function fitL1Logistic(data: SoftLabelData, C: number, options: FitOptions = {}): Float64Array {
  const n = rows(data);
  const d = data.features;
  const maxSweeps = options.maxSweeps ?? 1000;
  const tolerance = options.tolerance ?? 1e-10;
  const w = options.init ? Float64Array.from(options.init) : new Float64Array(d);
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) z[i]! += data.x[i * d + j]! * w[j]!;
  const zTrial = new Float64Array(n);

  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let largestMove = 0;
    for (let j = 0; j < d; j++) {
      let g = 0;
      let h = 0;
      for (let i = 0; i < n; i++) {
        const xij = data.x[i * d + j]!;
        if (xij === 0) continue;
        const s = data.s?.[i] ?? 1;
        const q = sigmoid(z[i]!);
        g += s * (q - data.p[i]!) * xij;
        h += s * q * (1 - q) * xij * xij;
      }
      g *= C;
      h = C * h + 1e-12;
      // Newton step on g*delta + h*delta^2/2 + |w_j + delta|.
      const wj = w[j]!;
      let delta: number;
      if (g + 1 <= h * wj) delta = -(g + 1) / h;
      else if (g - 1 >= h * wj) delta = -(g - 1) / h;
      else delta = -wj;
      if (delta === 0) continue;

      const before = objective(data, z, w, C);
      // Armijo condition on the model decrease of the composite objective. A predicted decrease below
      // the rounding error of F cannot be checked; there the quadratic model is exact enough to trust.
      const decrease = g * delta + Math.abs(wj + delta) - Math.abs(wj);
      const trustNewton = Math.abs(decrease) < 1e-12 * (1 + Math.abs(before));
      let t = 1;
      let accepted = trustNewton;
      if (trustNewton) {
        for (let i = 0; i < n; i++) zTrial[i] = z[i]! + delta * data.x[i * d + j]!;
        w[j] = wj + delta;
      }
      for (let tries = 0; tries < 50 && !accepted; tries++) {
        for (let i = 0; i < n; i++) zTrial[i] = z[i]! + t * delta * data.x[i * d + j]!;
        w[j] = wj + t * delta;
        if (objective(data, zTrial, w, C) <= before + 0.01 * t * decrease) {
          accepted = true;
          break;
        }
        t /= 2;
      }
      if (!accepted) {
        w[j] = wj;
        continue;
      }
      z.set(zTrial);
      largestMove = Math.max(largestMove, Math.abs(t * delta));
    }
    if (largestMove <= tolerance) break;
  }
  return w;
}

/** Mean weighted cross-entropy of soft labels under the model w (probabilities clipped like sklearn). */
export function meanLogLoss(data: SoftLabelData, w: Float64Array): number {
  const n = rows(data);
  const d = data.features;
  const eps = 1e-15;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let j = 0; j < d; j++) z += data.x[i * d + j]! * w[j]!;
    const q = Math.min(1 - eps, Math.max(eps, sigmoid(z)));
    const p = data.p[i]!;
    total -= (data.s?.[i] ?? 1) * (p * Math.log(q) + (1 - p) * Math.log(1 - q));
  }
  return total / n;
}

function subset(data: SoftLabelData, keep: (i: number) => boolean): SoftLabelData {
  const d = data.features;
  const idx: number[] = [];
  for (let i = 0; i < rows(data); i++) if (keep(i)) idx.push(i);
  const x = new Float64Array(idx.length * d);
  const p = new Float64Array(idx.length);
  const s = data.s ? new Float64Array(idx.length) : undefined;
  idx.forEach((i, k) => {
    x.set(data.x.subarray(i * d, (i + 1) * d), k * d);
    p[k] = data.p[i]!;
    if (s) s[k] = data.s![i]!;
  });
  return s ? { x, features: d, p, s } : { x, features: d, p };
}

/** The default grid of inverse regularisation strengths: 10 values log-spaced over [1e-4, 1e4]. */
export const DEFAULT_CS: readonly number[] = Array.from({ length: 10 }, (_, k) => 10 ** (-4 + (8 * k) / 9));

export interface CrossValidatedFit {
  w: Float64Array;
  /** The chosen C. */
  C: number;
  /** Mean held-out log loss per candidate C, in the order of `Cs`. */
  heldOutLoss: number[];
  Cs: readonly number[];
  folds: number;
}

/**
 * Chooses C from `Cs` by K-fold cross-validation on the mean held-out soft-label log loss (row i goes
 * to fold i mod K; ties go to the smaller C), then refits on all rows with that C.
 */
export function crossValidatedL1Logistic(
  data: SoftLabelData,
  options: { Cs?: readonly number[]; folds?: number } = {},
): CrossValidatedFit {
  const n = rows(data);
  const Cs = options.Cs ?? DEFAULT_CS;
  const folds = Math.min(options.folds ?? 5, n);
  if (folds < 2) throw new RangeError(`cross-validation needs at least 2 rows, got ${n}`);
  const heldOutLoss = Cs.map(() => 0);
  for (let f = 0; f < folds; f++) {
    const train = subset(data, (i) => i % folds !== f);
    const test = subset(data, (i) => i % folds === f);
    let warm: Float64Array | undefined;
    Cs.forEach((C, c) => {
      warm = fitL1Logistic(train, C, warm ? { init: warm } : {});
      heldOutLoss[c]! += meanLogLoss(test, warm) / folds;
    });
  }
  let best = 0;
  for (let c = 1; c < Cs.length; c++) if (heldOutLoss[c]! < heldOutLoss[best]!) best = c;
  const C = Cs[best]!;
  return { w: fitL1Logistic(data, C), C, heldOutLoss, Cs, folds };
}
