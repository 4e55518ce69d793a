/**
 * Finite-difference checks of the float64 engine (Model64): a weighted sum of log-probs on two packed
 * sequences as the loss, and each tensor's analytic gradient against central differences.
 */
import assert from "node:assert/strict";
import type { NativeModel, TensorSlot } from "../src/engine/index.js";

/**
 * Two packed sequences (lengths 7 and 5) over a vocabulary of at least 23 ids; rows with target -1 are
 * not scored.
 */
export const PACKED = {
  tokens: Int32Array.from([1, 2, 5, 7, 2, 9, 11, 4, 3, 2, 8, 22]),
  starts: Int32Array.from([0, 7, 12]),
  targets: Int32Array.from([5, -1, 7, 2, 9, 11, 0, 3, 2, -1, 22, 1]),
};

/** Packed sequences: tokens, sequence starts (S + 1) and each row's target (-1: not scored). */
export interface PackedBatch {
  tokens: Int32Array;
  starts: Int32Array;
  targets: Int32Array;
}

/**
 * Runs one forward and backward of `model` on `batch` for the loss sum_n weights[n] * logp[n] (its
 * gradients are accumulated), and returns that loss as a function of the current parameters.
 */
export function weightedLogprobLoss(
  model: NativeModel<Float64Array>,
  weights: Float64Array,
  batch: PackedBatch = PACKED,
): () => number {
  const { tokens, starts, targets } = batch;
  const logp = new Float64Array(tokens.length);
  model.forward(tokens, starts, targets, logp, true, null);
  model.backward(weights);
  return () => {
    model.forward(tokens, starts, targets, logp, false, null);
    return logp.reduce((s, lp, n) => s + lp * weights[n]!, 0);
  };
}

/**
 * For `samples` spread entries of each tensor (skipping those `skip` names), |analytic - numeric| within
 * 1e-7 of the largest numeric value (or of 1), and some gradient reaches every tensor.
 */
export function checkGradients(
  tensors: readonly TensorSlot[],
  params: Float64Array,
  grads: Float64Array,
  loss: () => number,
  options: { samples: number; skip?: (slot: TensorSlot, index: number) => boolean },
): void {
  const h = 1e-5;
  for (const slot of tensors) {
    let worst = 0;
    let scale = 0;
    for (let k = 0; k < Math.min(slot.size, options.samples); k++) {
      const i = slot.offset + ((k * 7919) % slot.size);
      if (options.skip?.(slot, i)) continue;
      const v = params[i]!;
      params[i] = v + h;
      const up = loss();
      params[i] = v - h;
      const down = loss();
      params[i] = v;
      const numeric = (up - down) / (2 * h);
      worst = Math.max(worst, Math.abs(numeric - grads[i]!));
      scale = Math.max(scale, Math.abs(numeric));
    }
    assert.ok(scale > 0, `${slot.name}: no gradient reaches it`);
    assert.ok(
      worst <= 1e-7 * Math.max(scale, 1),
      `${slot.name}: analytic vs numeric differ by ${worst} (scale ${scale})`,
    );
  }
}
