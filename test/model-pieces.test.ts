/**
 * Batches over maxBatchTokens: a loss with groups (SequenceLoss.groupOf) runs one forward + backward per
 * piece, pieces holding whole groups, with the gradients of the whole batch; every objective is a mean of
 * per-pair terms, which that relies on.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { getObjective, OBJECTIVE_NAMES, sequenceLossFn } from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM, type Example, type SequenceLoss } from "../src/model/model.js";

const config = parseConfig(
  {
    vocab_size: 50,
    hidden_size: 32,
    intermediate_size: 56,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
  "pieces test",
);

function examples(seed: number, n: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    prompt: Array.from({ length: 1 + rng.int(5) }, () => rng.int(50)),
    response: Array.from({ length: 2 + rng.int(8) }, () => rng.int(50)),
  }));
}

/** `loss`, counting its calls and recording, per call, which examples had a log-prob filled in. */
function recorded(loss: SequenceLoss) {
  const filled: number[][] = [];
  const wrapped: SequenceLoss = Object.assign(
    (lp: Float64Array) => {
      filled.push([...lp.keys()].filter((i) => lp[i] !== 0));
      return loss(lp);
    },
    loss.groupOf ? { groupOf: loss.groupOf } : {},
  );
  return { wrapped, filled };
}

function gradientsOf(data: Example[], loss: SequenceLoss, maxBatchTokens: number) {
  const model = CausalLM.init(config, 4, 0.1);
  model.maxBatchTokens = maxBatchTokens;
  const { wrapped, filled } = recorded(loss);
  const { loss: value, seqLogprobs } = model.accumulateGradients(data, wrapped);
  return { grads: Float64Array.from(model.grads), value, seqLogprobs, filled };
}

function relativeDistance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

test("pieces: a per-sequence loss runs one forward per piece, bit-identical to two passes", () => {
  const data = examples(1, 7);
  const mean = (lp: Float64Array) => ({
    loss: -lp.reduce((a, b) => a + b, 0) / lp.length,
    grad: new Float64Array(lp.length).fill(-1 / lp.length),
  });
  const grouped = gradientsOf(data, Object.assign(mean, { groupOf: (i: number) => i }), 16);
  const twoPass = gradientsOf(data, (lp) => mean(lp), 16);
  const whole = gradientsOf(data, (lp) => mean(lp), 0);
  assert.ok(grouped.filled.length >= 3, `${grouped.filled.length} pieces`);
  assert.equal(twoPass.filled.length, 1);
  // each call sees the pieces so far; the last one every log-prob
  for (let k = 1; k < grouped.filled.length; k++)
    assert.ok(grouped.filled[k]!.length > grouped.filled[k - 1]!.length);
  assert.deepEqual(grouped.filled.at(-1), [...data.keys()]);
  assert.deepEqual(grouped.grads, twoPass.grads);
  assert.equal(grouped.value, twoPass.value);
  assert.deepEqual(grouped.seqLogprobs, twoPass.seqLogprobs);
  assert.ok(relativeDistance(grouped.grads, whole.grads) < 1e-5);
});

test("pieces: a pair objective's pieces hold whole pairs and give the whole batch's gradients", () => {
  const n = 5;
  const data = examples(2, 3 * n);
  const f = (x: number) => new Float64Array(n).map((_, i) => x - i);
  const selm = sequenceLossFn(
    "selm",
    { refChosen: f(-20), refRejected: f(-22), refExplore: f(-21) },
    { beta: 0.2, alpha: 0.5 },
  );
  const grouped = gradientsOf(data, selm, 40);
  const whole = gradientsOf(data, selm, 0);
  assert.ok(grouped.filled.length >= 3, `${grouped.filled.length} pieces`);
  for (const seen of grouped.filled) {
    for (const i of seen)
      assert.ok(seen.includes(i % n) && seen.includes(n + (i % n)) && seen.includes(2 * n + (i % n)));
  }
  assert.ok(relativeDistance(grouped.grads, whole.grads) < 1e-5);
  assert.ok(Math.abs(grouped.value - whole.value) < 1e-6 * Math.abs(whole.value));
});

test("objectives: pair i's gradient reads only pair i's log-probs (sequenceLossFn's groups)", () => {
  const n = 4;
  const rng = new Rng(9);
  const arr = (scale: number, offset: number) =>
    new Float64Array(n).map(() => offset + scale * (rng.float() - 0.5));
  const fixed = {
    refChosen: arr(4, -20),
    refRejected: arr(4, -20),
    target: arr(0.8, 0.5),
    winRateChosen: arr(0.8, 0.5),
    winRateRejected: arr(0.8, 0.5),
    anchorChosen: arr(4, -20),
    anchorRejected: arr(4, -20),
    refExplore: arr(4, -20),
  };
  for (const name of OBJECTIVE_NAMES) {
    const loss = sequenceLossFn(name, fixed, { beta: 0.3, tau: 0.1, alpha: 0.5 });
    const blocks = getObjective(name).needs.includes("explore") ? 3 : 2;
    const base = new Float64Array(blocks * n).map(() => -20 + 4 * (rng.float() - 0.5));
    const before = loss(base).grad;
    const moved = base.slice();
    for (let b = 0; b < blocks; b++) moved[b * n + 1] = 0; // pair 1's responses, every one
    const after = loss(moved).grad;
    for (let i = 0; i < blocks * n; i++) {
      assert.equal(loss.groupOf(i), i % n);
      if (i % n !== 1) assert.equal(after[i], before[i], `${name}: entry ${i} moved with pair 1`);
    }
  }
});
