/**
 * The head in vocabulary chunks, with the training forward's logits kept for backward (all, some or none
 * of the chunks): float64 gradients against finite differences, float32 gradients bit-identical however
 * many chunks are kept, and a second backward after one forward (the kept logits are spent by the first).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine, type NativeModel } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { checkGradients, weightedLogprobLoss } from "./gradcheck.js";

const VOCAB = 300; // chunks of 256 columns (the least) when forced: 256 + 44
const config = parseConfig(
  {
    vocab_size: VOCAB,
    hidden_size: 12,
    intermediate_size: 10,
    num_hidden_layers: 2,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    head_dim: 4,
    tie_word_embeddings: true,
  },
  "head-memory",
);
// targets in both chunks, the last chunk's last column among them
const tokens = Int32Array.from([1, 290, 5, 257, 2, 9, 11, 299, 3, 2, 8, 22]);
const starts = Int32Array.from([0, 7, 12]);
const targets = Int32Array.from([290, -1, 257, 2, 299, 11, 256, 3, 2, -1, 22, 255]);
const scored = targets.filter((t) => t >= 0).length;

/** chunked: forced 256-column chunks; cacheChunks: how many of the 2 the forward keeps */
function setHead(
  model: Pick<NativeModel<Float32Array>, "setHeadMemory">,
  bytesPerValue: number,
  chunked: boolean,
  cacheChunks: number,
): void {
  const chunkValues = chunked ? 1 : 2 ** 22;
  const chunkBytes = bytesPerValue * scored * (chunked ? 256 : VOCAB);
  model.setHeadMemory(chunkValues, cacheChunks * chunkBytes);
}

const SETTINGS = [
  { chunked: false, cacheChunks: 0 },
  { chunked: false, cacheChunks: 1 },
  { chunked: true, cacheChunks: 0 },
  { chunked: true, cacheChunks: 1 },
  { chunked: true, cacheChunks: 2 },
];

for (const { chunked, cacheChunks } of SETTINGS) {
  test(`engine: head gradient equals float64 finite differences (${chunked ? "2 chunks" : "1 chunk"}, ${cacheChunks} kept)`, () => {
    const e = engine();
    const { tensors, total } = e.paramLayout(config);
    const rng = new Rng(5);
    const params = Float64Array.from({ length: total }, () => rng.normal() * 0.3);
    const grads = new Float64Array(total);
    const model = new e.Model64(config, params, grads);
    setHead(model, 8, chunked, cacheChunks);
    const weights = Float64Array.from(targets, () => rng.normal());
    const loss = weightedLogprobLoss(model, weights, { tokens, starts, targets });
    checkGradients(tensors, params, grads, loss, { samples: 10 });
  });
}

test("engine: float32 head gradients are bit-identical however many chunks the forward keeps", () => {
  const e = engine();
  const { total } = e.paramLayout(config);
  const rng = new Rng(6);
  const params = Float32Array.from({ length: total }, () => rng.normal() * 0.3);
  const dlogp = Float32Array.from(targets, () => rng.normal());
  const run = (chunked: boolean, cacheChunks: number, backwards = 1) => {
    const grads = new Float32Array(total);
    const model = new e.Model(config, params, grads);
    setHead(model, 4, chunked, cacheChunks);
    const logp = new Float32Array(tokens.length);
    model.forward(tokens, starts, targets, logp, true, null);
    for (let i = 0; i < backwards; i++) model.backward(dlogp);
    return { logp, grads };
  };
  for (const chunked of [false, true]) {
    const none = run(chunked, 0);
    for (const cacheChunks of chunked ? [1, 2] : [1]) {
      const kept = run(chunked, cacheChunks);
      assert.deepEqual(kept.logp, none.logp);
      assert.deepEqual(kept.grads, none.grads, `${cacheChunks} chunks kept`);
    }
    // the first backward spends the kept logits (they become d logits); the second recomputes them
    assert.deepEqual(run(chunked, 2, 2).grads, run(chunked, 0, 2).grads);
  }
  // chunking only reorders the log-sum-exp's sums
  const whole = run(false, 0),
    chunks = run(true, 0);
  const scale = Math.max(...whole.grads.map(Math.abs));
  for (const [i, g] of whole.grads.entries()) {
    assert.ok(Math.abs(g - chunks.grads[i]!) <= 1e-5 * scale, `grad ${i}`);
  }
});
