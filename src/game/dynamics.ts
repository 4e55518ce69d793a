/**
 * DNO and its rivals on a finite preference game, with a tabular softmax policy per prompt.
 *
 * - exact: Algorithm 1's target, soft policy iteration pi_{t+1} ∝ pi_t exp(r_t / beta), r_t = P pi_t;
 *   with tau > 0 the regularised variant (App. A, Nash-MD): pi_t is first replaced by the geometric
 *   mixture pi_t^tau ∝ pi_t^(1-tau/beta) pi_ref^(tau/beta), for both the opponent and the reference.
 * - sampled / prct / dpo / sppo / ipo: K samples y^1..y^K ~ pi_t per prompt; r^ estimated from the true
 *   P among the samples (winRateEstimates); pairs and labels as each method builds them; then `steps`
 *   Adam steps on the logits with the objective from src/core and its exact gradient, starting at pi_t.
 *     sampled: Algorithm 1's regression, all sample pairs, soft labels sigma(r^(y1) - r^(y2)), ref pi_t.
 *     prct:    Algorithm 2, large-margin win-rate pairs (winRatePairs), hard labels, ref pi_t.
 *     dpo:     iterative DPO, all sample pairs labelled by a Bradley-Terry reward fitted to P, ref pi_1.
 *     sppo:    SPPO's squared regression onto (P^(y > pi_t) - 1/2) / beta, ref pi_t.
 *     ipo:     online IPO, all sample pairs labelled by draws from P itself, ref pi_1.
 * pi_1 is the game's `initial` policy (uniform unless given); it is also pi_ref.
 */
import { getObjective, nashMdReference, type Objective } from "../core/objectives.js";
import { winRatePairs } from "../core/pairs.js";
import { logSumExp, sigmoid } from "../core/prob.js";
import { Rng } from "../core/rng.js";
import { winRateEstimates } from "../core/winrate.js";
import { DnoError } from "../util/errors.js";
import type { Game, PromptGame } from "./game.js";
import { solveNash } from "./nash.js";
import { exploitability, preferenceBetween, totalVariation, winRates } from "./policy.js";

export const GAME_MODES = ["exact", "sampled", "prct", "dpo", "sppo", "ipo"] as const;
export type GameMode = (typeof GAME_MODES)[number];

export interface GameRunOptions {
  mode: GameMode;
  iterations: number;
  /** Log-ratio coefficient (Algorithm 1's eta): the step is r_t / beta. */
  beta: number;
  /** Regularisation toward pi_ref (exact mode); 0 is Algorithm 1. */
  tau: number;
  /** K, samples of pi_t per prompt and iteration (sampled modes). */
  samples: number;
  /** Adam steps per iteration and their learning rate (sampled modes). */
  steps: number;
  lr: number;
  /** prct: required win-rate margin r^(y+) - r^(y-). */
  margin: number;
  seed: number;
}

export const DEFAULT_GAME_OPTIONS: GameRunOptions = {
  mode: "exact",
  iterations: 200,
  beta: 1,
  tau: 0,
  samples: 16,
  steps: 100,
  lr: 0.05,
  margin: 0.3,
  seed: 0,
};

export interface IterationRecord {
  t: number;
  /** P(pi_{t+1} > pi_t), averaged over prompts. */
  p_improve: number;
  /** max_y P(y > pi) - 1/2 averaged over prompts, for pi_{t+1} and the uniform mixture of pi_1..pi_{t+1}. */
  exploitability_last: number;
  exploitability_mixture: number;
  /** Total-variation distance to the LP's Nash equilibrium, averaged over prompts. */
  nash_distance_last: number;
  nash_distance_mixture: number;
  /** Training loss at the last step, averaged over prompts (sampled modes), else null. */
  loss: number | null;
}

export interface PromptPolicies {
  prompt: string;
  responses: string[];
  nash: number[];
  last: number[];
  mixture: number[];
}

export interface GameRun {
  game: string;
  description: string;
  mode: GameMode;
  options: GameRunOptions;
  /** Exploitability of the LP solution (certified <= 1e-9), the worst over prompts. */
  nash_exploitability: number;
  initial: { exploitability: number; nash_distance: number };
  iterations: IterationRecord[];
  final: IterationRecord & { policies: PromptPolicies[] };
}

const OBJECTIVE_OF_MODE: Record<Exclude<GameMode, "exact">, string> = {
  sampled: "dno",
  prct: "dno-prct",
  dpo: "dpo",
  sppo: "sppo",
  ipo: "ipo",
};

export function validateGameOptions(o: GameRunOptions): void {
  const bad = (what: string) => new DnoError(`game: ${what}`);
  if (!GAME_MODES.includes(o.mode))
    throw bad(`--mode must be one of ${GAME_MODES.join(", ")}, got "${o.mode}"`);
  if (!(Number.isInteger(o.iterations) && o.iterations >= 1))
    throw bad(`--iterations must be a positive integer, got ${o.iterations}`);
  if (!(o.beta > 0 && Number.isFinite(o.beta))) throw bad(`--beta must be positive, got ${o.beta}`);
  if (!(o.tau >= 0 && o.tau <= o.beta)) throw bad(`--tau must be in [0, beta], got ${o.tau}`);
  if (o.tau > 0 && o.mode !== "exact") throw bad("--tau applies to --mode exact only");
  if (!(Number.isInteger(o.samples) && o.samples >= 2))
    throw bad(`--samples must be an integer >= 2, got ${o.samples}`);
  if (!(Number.isInteger(o.steps) && o.steps >= 1))
    throw bad(`--steps must be a positive integer, got ${o.steps}`);
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw bad(`--lr must be positive, got ${o.lr}`);
  if (!(o.margin >= 0 && o.margin <= 1)) throw bad(`--margin must be in [0, 1], got ${o.margin}`);
  if (!(Number.isInteger(o.seed) && o.seed >= 0))
    throw bad(`--seed must be a non-negative integer, got ${o.seed}`);
}

interface PromptState {
  game: PromptGame;
  nash: Float64Array;
  logRef: Float64Array;
  logPi: Float64Array;
  mixtureSum: Float64Array;
  /** Bradley-Terry rewards fitted to P (dpo mode only). */
  btScores: Float64Array | null;
}

export function runGame(game: Game, options: GameRunOptions): GameRun {
  validateGameOptions(options);
  const states: PromptState[] = game.prompts.map((g) => {
    const logRef = g.initial.map(Math.log);
    return {
      game: g,
      nash: solveNash(g.preference).policy,
      logRef,
      logPi: logRef.slice(),
      mixtureSum: g.initial.slice(),
      btScores: options.mode === "dpo" ? fitBradleyTerry(g.preference) : null,
    };
  });
  const objective = options.mode === "exact" ? null : getObjective(OBJECTIVE_OF_MODE[options.mode]);
  const mean = (f: (s: PromptState) => number) => states.reduce((a, s) => a + f(s), 0) / states.length;
  const nashExploitability = Math.max(...states.map((s) => exploitability(s.game.preference, s.nash)));
  const initial = {
    exploitability: mean((s) => exploitability(s.game.preference, s.game.initial)),
    nash_distance: mean((s) => totalVariation(s.game.initial, s.nash)),
  };

  const iterations: IterationRecord[] = [];
  for (let t = 1; t <= options.iterations; t++) {
    const losses: number[] = [];
    const improve: number[] = [];
    states.forEach((s, k) => {
      const piT = probabilities(s.logPi);
      let next: Float64Array;
      if (objective === null) {
        next = exactStep(s, options);
      } else {
        const step = sampledStep(
          s,
          objective,
          options,
          Rng.derive(options.seed, "game", options.mode, k, t),
          t,
        );
        next = step.logPi;
        if (step.loss !== null) losses.push(step.loss);
      }
      s.logPi = next;
      const pi = probabilities(next);
      for (let i = 0; i < pi.length; i++) s.mixtureSum[i] += pi[i]!;
      improve.push(preferenceBetween(s.game.preference, pi, piT));
    });
    const mixture = (s: PromptState) => s.mixtureSum.map((v) => v / (t + 1));
    iterations.push({
      t,
      p_improve: improve.reduce((a, b) => a + b, 0) / improve.length,
      exploitability_last: mean((s) => exploitability(s.game.preference, probabilities(s.logPi))),
      exploitability_mixture: mean((s) => exploitability(s.game.preference, mixture(s))),
      nash_distance_last: mean((s) => totalVariation(probabilities(s.logPi), s.nash)),
      nash_distance_mixture: mean((s) => totalVariation(mixture(s), s.nash)),
      loss: losses.length === 0 ? null : losses.reduce((a, b) => a + b, 0) / losses.length,
    });
  }
  const T = options.iterations;
  return {
    game: game.name,
    description: game.description,
    mode: options.mode,
    options,
    nash_exploitability: nashExploitability,
    initial,
    iterations,
    final: {
      ...iterations[T - 1]!,
      policies: states.map((s) => ({
        prompt: s.game.id,
        responses: s.game.responses,
        nash: [...s.nash],
        last: [...probabilities(s.logPi)],
        mixture: [...s.mixtureSum.map((v) => v / (T + 1))],
      })),
    },
  };
}

function probabilities(logPi: Float64Array): Float64Array {
  return logPi.map(Math.exp);
}

function normalizeLog(logits: Float64Array): Float64Array {
  const lse = logSumExp(logits);
  return logits.map((v) => v - lse);
}

/** pi_{t+1} ∝ pi_t exp(r_t / beta), or with tau > 0 the same step from the mixture pi_t^tau. */
function exactStep(s: PromptState, o: GameRunOptions): Float64Array {
  const base =
    o.tau > 0 ? normalizeLog(nashMdReference(s.logPi, s.logRef, { beta: o.beta, tau: o.tau })) : s.logPi;
  const r = winRates(s.game.preference, probabilities(base));
  return normalizeLog(base.map((v, i) => v + r[i]! / o.beta));
}

interface TrainingPairs {
  chosen: number[];
  rejected: number[];
  target: number[];
  winRateChosen: number[];
  winRateRejected: number[];
}

/** One iteration of a sample-based method for one prompt: sample, label, train. */
function sampledStep(
  s: PromptState,
  objective: Objective,
  o: GameRunOptions,
  rng: Rng,
  t: number,
): { logPi: Float64Array; loss: number | null } {
  const P = s.game.preference;
  const piT = probabilities(s.logPi);
  const ys = Array.from({ length: o.samples }, () => rng.categorical(piT));
  const rHat = winRateEstimates(ys.map((a) => ys.map((b) => P[a]![b]!))) as number[];
  const pairs: TrainingPairs = {
    chosen: [],
    rejected: [],
    target: [],
    winRateChosen: [],
    winRateRejected: [],
  };
  const add = (w: number, l: number) => {
    pairs.chosen.push(ys[w]!);
    pairs.rejected.push(ys[l]!);
    pairs.target.push(sigmoid(rHat[w]! - rHat[l]!));
    pairs.winRateChosen.push(rHat[w]!);
    pairs.winRateRejected.push(rHat[l]!);
  };
  if (o.mode === "prct") {
    const candidates = ys.map((_, i) => ({ id: String(i), source: "student" as const, winRate: rHat[i]! }));
    const rule = { margin: o.margin, studentMargin: o.margin, pairsPerPrompt: o.samples };
    for (const p of winRatePairs(s.game.id, candidates, rule, o.seed, t))
      add(Number(p.chosen), Number(p.rejected));
  } else {
    for (let i = 0; i < ys.length; i++) {
      for (let j = i + 1; j < ys.length; j++) {
        if (ys[i] === ys[j]) continue;
        let iWins: boolean;
        if (o.mode === "dpo") iWins = rng.float() < sigmoid(s.btScores![ys[i]!]! - s.btScores![ys[j]!]!);
        else if (o.mode === "ipo") iWins = rng.float() < P[ys[i]!]![ys[j]!]!;
        else iWins = rHat[i]! >= rHat[j]!;
        if (iWins) add(i, j);
        else add(j, i);
      }
    }
  }
  if (pairs.chosen.length === 0) return { logPi: s.logPi, loss: null };
  const ref = objective.reference === "fixed" ? s.logRef : s.logPi;
  return trainLogits(s.logPi, ref, pairs, objective, o);
}

/** Adam on tabular logits theta, log pi(y) = theta_y - logsumexp(theta), from theta = log pi_t. */
function trainLogits(
  logPi: Float64Array,
  logRef: Float64Array,
  pairs: TrainingPairs,
  objective: Objective,
  o: GameRunOptions,
): { logPi: Float64Array; loss: number } {
  const n = logPi.length;
  const m = pairs.chosen.length;
  const theta = logPi.slice();
  const first = new Float64Array(n);
  const second = new Float64Array(n);
  const batch = {
    policyChosen: new Float64Array(m),
    policyRejected: new Float64Array(m),
    refChosen: Float64Array.from(pairs.chosen, (y) => logRef[y]!),
    refRejected: Float64Array.from(pairs.rejected, (y) => logRef[y]!),
    target: Float64Array.from(pairs.target),
    winRateChosen: Float64Array.from(pairs.winRateChosen),
    winRateRejected: Float64Array.from(pairs.winRateRejected),
  };
  let loss = 0;
  for (let step = 1; step <= o.steps; step++) {
    const logp = normalizeLog(theta);
    for (let i = 0; i < m; i++) {
      batch.policyChosen[i] = logp[pairs.chosen[i]!]!;
      batch.policyRejected[i] = logp[pairs.rejected[i]!]!;
    }
    const out = objective.fn(batch, { beta: o.beta });
    loss = out.loss;
    // d log pi(y) / d theta_k = [k = y] - pi_k.
    const grad = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < m; i++) {
      grad[pairs.chosen[i]!] += out.gradChosen[i]!;
      grad[pairs.rejected[i]!] += out.gradRejected[i]!;
      total += out.gradChosen[i]! + out.gradRejected[i]!;
    }
    for (let k = 0; k < n; k++) {
      const g = grad[k]! - total * Math.exp(logp[k]!);
      first[k] = 0.9 * first[k]! + 0.1 * g;
      second[k] = 0.999 * second[k]! + 0.001 * g * g;
      const mHat = first[k]! / (1 - 0.9 ** step);
      const vHat = second[k]! / (1 - 0.999 ** step);
      theta[k] -= (o.lr * mHat) / (Math.sqrt(vHat) + 1e-8);
    }
  }
  return { logPi: normalizeLog(theta), loss };
}

/**
 * The reward model RLHF would fit: Bradley-Terry scores s maximising
 * sum_{i != j} P_ij log sigma(s_i - s_j) - (1e-3 / 2) |s|^2 (the ridge keeps separable games finite),
 * by gradient ascent; the gradient is g_i = sum_j (P_ij - sigma(s_i - s_j)) - 1e-3 s_i.
 */
export function fitBradleyTerry(preference: readonly Float64Array[]): Float64Array {
  const n = preference.length;
  const lambda = 1e-3;
  const s = new Float64Array(n);
  const rate = 1 / (n / 2 + lambda);
  for (let iter = 0; iter < 5000; iter++) {
    const g = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) if (i !== j) g[i] += preference[i]![j]! - sigmoid(s[i]! - s[j]!);
      g[i] -= lambda * s[i]!;
    }
    let norm = 0;
    for (let i = 0; i < n; i++) {
      s[i] += rate * g[i]!;
      norm = Math.max(norm, Math.abs(g[i]!));
    }
    if (norm < 1e-12) break;
  }
  return s;
}
