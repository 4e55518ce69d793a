/**
 * Preference objectives as pure functions of sequence log-probs, TRL-style: one table, picked by name.
 *
 * Notation (../../docs/ARCHITECTURE.md): for a pair (y_w, y_l) = (chosen, rejected),
 *   lr(y) = log pi_theta(y|x) - log pi_ref(y|x)      (policy minus reference sequence log-prob)
 *   h     = beta * (lr(y_w) - lr(y_l))
 * `beta` multiplies the log-ratio: it is DPO's beta and Algorithm 1's eta, the strength of the KL
 * regulariser, so the soft-policy-iteration target is pi_t(y) * exp(r_t(y) / beta).
 * The reference is pi_t (DNO, DNO-Prct, SPPO, SPIN, INPO) or a fixed pi_ref (DPO, IPO); which one is
 * the caller's choice, the formulas do not change.
 *
 * Every objective returns the mean loss over the batch and its exact gradient with respect to the
 * policy sequence log-probs `policyChosen` and `policyRejected` (the 1/n of the mean included). The
 * mean is of per-pair terms: pair i's gradient reads only pair i's entries (sequenceLossFn relies on it).
 */
import { DnoError } from "../util/errors.js";
import { logSigmoid, sigmoid } from "./prob.js";

/** Sequence log-probs (and targets) for a batch of n pairs; every array has length n. */
export interface PairBatch {
  /** log pi_theta(y_w|x), log pi_theta(y_l|x): the policy being trained. */
  policyChosen: Float64Array;
  policyRejected: Float64Array;
  /** log pi_ref(y_w|x), log pi_ref(y_l|x): pi_t or a fixed reference, constants. */
  refChosen: Float64Array;
  refRejected: Float64Array;
  /** dno: soft label p = sigma(r_t(y_w) - r_t(y_l)), the probability that chosen beats rejected. */
  target?: Float64Array;
  /** sppo: estimated win rates P^(y_w > pi_t), P^(y_l > pi_t) in [0, 1]. */
  winRateChosen?: Float64Array;
  winRateRejected?: Float64Array;
  /** inpo: log pi_ref(y_w|x), log pi_ref(y_l|x) of the fixed anchor; ref* then hold pi_t. */
  anchorChosen?: Float64Array;
  anchorRejected?: Float64Array;
  /** selm: log pi_theta(y_e|x), log pi_ref(y_e|x) of y_e ~ pi_ref, the response the optimism term pushes from. */
  policyExplore?: Float64Array;
  refExplore?: Float64Array;
}

export interface ObjectiveParams {
  /** Log-ratio coefficient (DPO's beta, Algorithm 1's eta), > 0. */
  beta: number;
  /** inpo / Nash-MD: regularisation toward the anchor pi_ref, 0 <= tau <= beta. */
  tau?: number;
  /** selm: weight of the optimism term, >= 0 (0 is DPO). */
  alpha?: number;
}

export interface PairLoss {
  loss: number;
  /** d loss / d policyChosen[i] and d loss / d policyRejected[i]. */
  gradChosen: Float64Array;
  gradRejected: Float64Array;
  /** d loss / d policyExplore[i], for objectives that read it. */
  gradExplore?: Float64Array;
}

export type ObjectiveFn = (batch: PairBatch, params: ObjectiveParams) => PairLoss;

export interface Objective {
  name: string;
  /** What the objective reads beyond the four log-prob arrays. */
  needs: readonly ("target" | "winRates" | "anchor" | "tau" | "explore" | "alpha")[];
  /** The reference the paper's method uses: pi_t (refreshed every iteration) or a fixed pi_ref. */
  reference: "pi_t" | "fixed";
  fn: ObjectiveFn;
  /** One line for help texts. */
  summary: string;
}

function sizeOf(batch: PairBatch): number {
  const n = batch.policyChosen.length;
  const arrays: [string, Float64Array | undefined][] = [
    ["policyRejected", batch.policyRejected],
    ["refChosen", batch.refChosen],
    ["refRejected", batch.refRejected],
    ["target", batch.target],
    ["winRateChosen", batch.winRateChosen],
    ["winRateRejected", batch.winRateRejected],
    ["anchorChosen", batch.anchorChosen],
    ["anchorRejected", batch.anchorRejected],
    ["policyExplore", batch.policyExplore],
    ["refExplore", batch.refExplore],
  ];
  for (const [name, a] of arrays) {
    if (a !== undefined && a.length !== n) {
      throw new RangeError(`objective batch: ${name} has length ${a.length}, policyChosen has ${n}`);
    }
  }
  if (n === 0) throw new RangeError("objective batch: no pairs");
  return n;
}

function checkBeta(params: ObjectiveParams): number {
  if (!(params.beta > 0) || !Number.isFinite(params.beta)) {
    throw new DnoError(`objective: beta must be a positive number, got ${params.beta}`);
  }
  return params.beta;
}

function required(batch: PairBatch, field: keyof PairBatch, objective: string): Float64Array {
  const a = batch[field];
  if (a === undefined) throw new RangeError(`objective ${objective}: batch.${field} is required`);
  return a;
}

/**
 * DNO, Algorithm 1 (soft labels), a logistic regression of the internal reward beta*lr onto r_t:
 *   L = -[ p log sigma(h) + (1 - p) log sigma(-h) ],  p = sigma(r_t(y_w) - r_t(y_l)),
 *   dL/dh = sigma(h) - p.
 * Its minimiser over all policies is pi_t(y) exp(r_t(y)/beta) / Z when the reference is pi_t.
 */
export const dnoLoss: ObjectiveFn = (batch, params) =>
  softLabelLogistic(batch, checkBeta(params), required(batch, "target", "dno"));

/**
 * Sigmoid loss: DPO (Rafailov et al. 2023) with a fixed reference, DNO-Prct (Algorithm 2) with
 * reference pi_t, SPIN (Chen et al. 2024) with the gold response as y_w against the policy's sample:
 *   L = -log sigma(h),  dL/dh = sigma(h) - 1.
 */
export const sigmoidLoss: ObjectiveFn = (batch, params) => softLabelLogistic(batch, checkBeta(params), null);

/**
 * -[ p log sigma(h) + (1 - p) log sigma(-h) ] averaged over pairs, h = beta (lr(y_w) - lr(y_l));
 * `target` null is the hard label p = 1.
 */
function softLabelLogistic(batch: PairBatch, beta: number, target: Float64Array | null): PairLoss {
  const n = sizeOf(batch);
  const gradChosen = new Float64Array(n);
  const gradRejected = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const p = target === null ? 1 : target[i]!;
    const h =
      beta *
      (batch.policyChosen[i]! - batch.refChosen[i]! - batch.policyRejected[i]! + batch.refRejected[i]!);
    loss -= p === 1 ? logSigmoid(h) : p * logSigmoid(h) + (1 - p) * logSigmoid(-h);
    const dh = (sigmoid(h) - p) / n;
    gradChosen[i] = beta * dh;
    gradRejected[i] = -beta * dh;
  }
  return { loss: loss / n, gradChosen, gradRejected };
}

/**
 * IPO (Azar et al. 2023): L = ( lr(y_w) - lr(y_l) - 1/(2 beta) )^2,
 * dL/dlr(y_w) = 2 ( lr(y_w) - lr(y_l) - 1/(2 beta) ) = -dL/dlr(y_l).
 */
export const ipoLoss: ObjectiveFn = (batch, params) => {
  const n = sizeOf(batch);
  const beta = checkBeta(params);
  const gradChosen = new Float64Array(n);
  const gradRejected = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const d =
      batch.policyChosen[i]! -
      batch.refChosen[i]! -
      batch.policyRejected[i]! +
      batch.refRejected[i]! -
      1 / (2 * beta);
    loss += d * d;
    gradChosen[i] = (2 * d) / n;
    gradRejected[i] = (-2 * d) / n;
  }
  return { loss: loss / n, gradChosen, gradRejected };
};

/**
 * SPPO (Wu et al. 2024), reference pi_t, win rates P^(y > pi_t) estimated over the K samples:
 *   L = ( lr(y_w) - (P^(y_w > pi_t) - 1/2)/beta )^2 + ( lr(y_l) - (P^(y_l > pi_t) - 1/2)/beta )^2.
 * Its minimiser is pi_t(y) exp((P(y > pi_t) - 1/2)/beta): the same target as Algorithm 1, by a
 * squared loss on each response instead of a logistic loss on each pair.
 */
export const sppoLoss: ObjectiveFn = (batch, params) => {
  const n = sizeOf(batch);
  const beta = checkBeta(params);
  const wc = required(batch, "winRateChosen", "sppo");
  const wl = required(batch, "winRateRejected", "sppo");
  const gradChosen = new Float64Array(n);
  const gradRejected = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const dc = batch.policyChosen[i]! - batch.refChosen[i]! - (wc[i]! - 0.5) / beta;
    const dl = batch.policyRejected[i]! - batch.refRejected[i]! - (wl[i]! - 0.5) / beta;
    loss += dc * dc + dl * dl;
    gradChosen[i] = (2 * dc) / n;
    gradRejected[i] = (2 * dl) / n;
  }
  return { loss: loss / n, gradChosen, gradRejected };
};

/**
 * Nash-MD / DNO's regularised reference (App. A): the geometric mixture
 *   log pi_t^tau(y) = (1 - tau/beta) log pi_t(y) + (tau/beta) log pi_ref(y)   (unnormalised),
 * element-wise over sequence log-probs. The normaliser log Z is the same for both responses of a
 * prompt, so it cancels in every pairwise objective; tabular callers renormalise themselves.
 */
export function nashMdReference(
  logPiT: Float64Array,
  logPiRef: Float64Array,
  params: ObjectiveParams,
): Float64Array {
  const beta = checkBeta(params);
  const tau = params.tau;
  if (tau === undefined || !(tau >= 0 && tau <= beta)) {
    throw new DnoError(`Nash-MD reference: tau must satisfy 0 <= tau <= beta (${beta}), got ${tau}`);
  }
  if (logPiT.length !== logPiRef.length) {
    throw new RangeError(`nashMdReference: lengths ${logPiT.length} and ${logPiRef.length} differ`);
  }
  const w = tau / beta;
  const out = new Float64Array(logPiT.length);
  for (let i = 0; i < out.length; i++) out[i] = (1 - w) * logPiT[i]! + w * logPiRef[i]!;
  return out;
}

/**
 * INPO (Zhang et al. 2024): IPO toward the Nash-MD mixture of pi_t (in ref*) and the anchor pi_ref:
 *   L = ( log pi(y_w)/pi(y_l) - (tau/beta) log pi_ref(y_w)/pi_ref(y_l)
 *         - (1 - tau/beta) log pi_t(y_w)/pi_t(y_l) - 1/(2 beta) )^2.
 */
export const inpoLoss: ObjectiveFn = (batch, params) => {
  const anchorChosen = required(batch, "anchorChosen", "inpo");
  const anchorRejected = required(batch, "anchorRejected", "inpo");
  return ipoLoss(
    {
      ...batch,
      refChosen: nashMdReference(batch.refChosen, anchorChosen, params),
      refRejected: nashMdReference(batch.refRejected, anchorRejected, params),
    },
    params,
  );
};

/**
 * Nash-MD in DNO-Prct form: the sigmoid loss toward the geometric mixture of pi_t (in ref*) and the
 * anchor pi_ref, L = -log sigma(beta (log pi(y_w)/pi(y_l) - log pi_t^tau(y_w)/pi_t^tau(y_l))).
 */
export const nashMdLoss: ObjectiveFn = (batch, params) => {
  const anchorChosen = required(batch, "anchorChosen", "nash-md");
  const anchorRejected = required(batch, "anchorRejected", "nash-md");
  return sigmoidLoss(
    {
      ...batch,
      refChosen: nashMdReference(batch.refChosen, anchorChosen, params),
      refRejected: nashMdReference(batch.refRejected, anchorRejected, params),
    },
    params,
  );
};

/**
 * SELM (Zhang et al. 2024, eq. 4.6; the authors' `optimistic_dpo_loss`): the DPO loss plus the
 * optimism term alpha * beta * (log pi(y_e) - log pi_ref(y_e)) on a response y_e drawn from pi_ref.
 * Minimising it lowers the probability of what pi_ref already says, biasing pi toward unexplored
 * responses with high implicit reward; dL/d log pi(y_e) = alpha * beta / n.
 */
export const selmLoss: ObjectiveFn = (batch, params) => {
  const beta = checkBeta(params);
  const alpha = params.alpha;
  if (alpha === undefined || !(alpha >= 0) || !Number.isFinite(alpha)) {
    throw new DnoError(`selm: alpha must be a number >= 0, got ${alpha}`);
  }
  const policyExplore = required(batch, "policyExplore", "selm");
  const refExplore = required(batch, "refExplore", "selm");
  const dpo = softLabelLogistic(batch, beta, null);
  const n = policyExplore.length;
  let optimism = 0;
  for (let i = 0; i < n; i++) optimism += policyExplore[i]! - refExplore[i]!;
  return {
    ...dpo,
    loss: dpo.loss + (alpha * beta * optimism) / n,
    gradExplore: new Float64Array(n).fill((alpha * beta) / n),
  };
};

/** The table of objectives, picked by a config string. */
export const OBJECTIVES = {
  dno: {
    name: "dno",
    needs: ["target"],
    reference: "pi_t",
    fn: dnoLoss,
    summary: "Algorithm 1: soft labels sigma(r_t(y_w) - r_t(y_l)), reference pi_t",
  },
  "dno-prct": {
    name: "dno-prct",
    needs: [],
    reference: "pi_t",
    fn: sigmoidLoss,
    summary: "Algorithm 2: -log sigma(h) on large-margin pairs, reference pi_t",
  },
  dpo: {
    name: "dpo",
    needs: [],
    reference: "fixed",
    fn: sigmoidLoss,
    summary: "DPO: -log sigma(h), fixed reference pi_ref",
  },
  spin: {
    name: "spin",
    needs: [],
    reference: "pi_t",
    fn: sigmoidLoss,
    summary: "SPIN: -log sigma(h), gold over the policy's own sample, reference pi_t",
  },
  ipo: {
    name: "ipo",
    needs: [],
    reference: "fixed",
    fn: ipoLoss,
    summary: "IPO: (lr_w - lr_l - 1/(2 beta))^2",
  },
  sppo: {
    name: "sppo",
    needs: ["winRates"],
    reference: "pi_t",
    fn: sppoLoss,
    summary: "SPPO: squared regression of lr onto (P^(y > pi_t) - 1/2)/beta",
  },
  inpo: {
    name: "inpo",
    needs: ["anchor", "tau"],
    reference: "pi_t",
    fn: inpoLoss,
    summary: "INPO: IPO toward the mixture pi_t^(1-tau/beta) pi_ref^(tau/beta)",
  },
  "nash-md": {
    name: "nash-md",
    needs: ["anchor", "tau"],
    reference: "pi_t",
    fn: nashMdLoss,
    summary: "Nash-MD: -log sigma(h) toward the mixture pi_t^(1-tau/beta) pi_ref^(tau/beta)",
  },
  selm: {
    name: "selm",
    needs: ["explore", "alpha"],
    reference: "pi_t",
    fn: selmLoss,
    summary: "SELM: -log sigma(h) + alpha beta lr(y_e), y_e ~ pi_ref (optimism)",
  },
} as const satisfies Record<string, Objective>;

export type ObjectiveName = keyof typeof OBJECTIVES;

export const OBJECTIVE_NAMES = Object.keys(OBJECTIVES) as ObjectiveName[];

/** The objective named by a config string; a DnoError listing the valid names otherwise. */
export function getObjective(name: string): Objective {
  if (!Object.hasOwn(OBJECTIVES, name)) {
    throw new DnoError(`unknown objective "${name}"; expected one of ${OBJECTIVE_NAMES.join(", ")}`);
  }
  return OBJECTIVES[name as ObjectiveName];
}

/**
 * Adapts an objective to `CausalLM.accumulateGradients`, which gives one Float64Array of policy
 * sequence log-probs laid out as [chosen_0 .. chosen_{n-1}, rejected_0 .. rejected_{n-1}] (then
 * explore_0 .. explore_{n-1} for an objective that needs "explore") and wants `{ loss, grad }` in the
 * same layout. Every objective is a mean of per-pair terms, so the responses of pair i form a group
 * (`groupOf`), which lets long batches run one forward per piece.
 */
export function sequenceLossFn(
  objective: Objective | string,
  fixed: Omit<PairBatch, "policyChosen" | "policyRejected" | "policyExplore">,
  params: ObjectiveParams,
): {
  (seqLogprobs: Float64Array): { loss: number; grad: Float64Array };
  groupOf: (example: number) => number;
} {
  const o = typeof objective === "string" ? getObjective(objective) : objective;
  const blocks = o.needs.includes("explore") ? 3 : 2;
  const n = fixed.refChosen.length;
  const loss = (seqLogprobs: Float64Array) => {
    if (seqLogprobs.length !== blocks * n) {
      throw new RangeError(
        `sequence loss: expected ${blocks * n} log-probs (${blocks} blocks of ${n}), got ${seqLogprobs.length}`,
      );
    }
    const { loss, gradChosen, gradRejected, gradExplore } = o.fn(
      {
        ...fixed,
        policyChosen: seqLogprobs.subarray(0, n),
        policyRejected: seqLogprobs.subarray(n, 2 * n),
        ...(blocks === 3 && { policyExplore: seqLogprobs.subarray(2 * n) }),
      },
      params,
    );
    const grad = new Float64Array(blocks * n);
    grad.set(gradChosen, 0);
    grad.set(gradRejected, n);
    if (blocks === 3) grad.set(gradExplore!, 2 * n);
    return { loss, grad };
  };
  return Object.assign(loss, { groupOf: (example: number) => example % n });
}

/** Algorithm 1's soft labels p_i = sigma(r(y_w,i) - r(y_l,i)) from win-rate estimates. */
export function softTargets(
  winRateChosen: ArrayLike<number>,
  winRateRejected: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(winRateChosen.length);
  for (let i = 0; i < out.length; i++) out[i] = sigmoid(winRateChosen[i]! - winRateRejected[i]!);
  return out;
}
