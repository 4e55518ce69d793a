/**
 * Activation recomputation: gradients bit-identical to keeping every layer's activations (float32 and
 * bf16, full training and LoRA), the recomputation really happening at backward time, and the default
 * batch of tokens growing with it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sequenceLossFn } from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { CausalLM, type Example } from "../src/model/model.js";
import type { ResolvedPrecision } from "../src/model/precision.js";
import { randomModel } from "./model-random.js";

// Several layers, GQA and Qwen2's q/k/v biases: every kernel of a layer is recomputed.
const HF = {
  model_type: "qwen2",
  vocab_size: 90,
  hidden_size: 48,
  intermediate_size: 80,
  num_hidden_layers: 4,
  num_attention_heads: 6,
  num_key_value_heads: 2,
};
const config = parseConfig(HF, "recompute test");

function examples(seed: number, n: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    prompt: Array.from({ length: 1 + rng.int(6) }, () => rng.int(HF.vocab_size)),
    response: Array.from({ length: 1 + rng.int(9) }, () => rng.int(HF.vocab_size)),
  }));
}

const data = examples(3, 6);
const dpo = sequenceLossFn(
  "dpo",
  { refChosen: new Float64Array(3).fill(-25), refRejected: new Float64Array(3).fill(-25) },
  { beta: 0.1 },
);

const SETUPS = ["full", "full, in pieces", "lora trains", "lora applied, base trains"] as const;
type Setup = (typeof SETUPS)[number];

/** The gradient of what trains (and the log-probs) after one accumulateGradients. */
function gradients(precision: ResolvedPrecision, setup: Setup, recompute: boolean) {
  const model = CausalLM.init(config, 5, 0.1);
  model.precision = precision;
  if (setup === "full, in pieces") model.maxBatchTokens = 24; // several pieces
  if (setup.startsWith("lora")) {
    const adapter = LoraAdapter.init(config, loraConfigSchema.parse({ r: 4 }), 6);
    for (const { b } of adapter.pairs()) adapter.tensor(b.name).fill(0.05); // B = 0 would hide dA
    model.attachAdapter(adapter, { train: setup === "lora trains" });
  }
  model.recompute = recompute;
  const { seqLogprobs } = model.accumulateGradients(data, dpo);
  const g = model.grads;
  return { grads: Buffer.from(new Uint8Array(g.buffer, g.byteOffset, g.byteLength)), seqLogprobs };
}

for (const precision of ["fp32", "bf16"] as const) {
  for (const setup of SETUPS) {
    test(`recompute: bit-identical gradients (${precision}, ${setup})`, () => {
      const kept = gradients(precision, setup, false);
      const recomputed = gradients(precision, setup, true);
      assert.ok(kept.grads.some((b) => b !== 0));
      assert.ok(kept.grads.equals(recomputed.grads), "gradients differ");
      assert.deepEqual(recomputed.seqLogprobs, kept.seqLogprobs);
    });
  }
}

test("recompute recomputes at backward time: a weight changed after the forward reaches the gradient", () => {
  // Not something training does; it shows backward reads recomputed activations, not kept ones.
  const { config: c, params } = randomModel(HF, 8);
  const tokens = Int32Array.from([3, 14, 15, 9, 26, 5, 35, 8]);
  const starts = Int32Array.from([0, 5, 8]);
  const targets = Int32Array.from([14, 15, 9, 26, -1, 35, 8, -1]);
  const dlogp = new Float32Array(8).fill(1);
  const norm = engine()
    .paramLayout(c)
    .tensors.find((t) => t.name === "model.layers.1.input_layernorm.weight")!;
  const gradAfterChange = (recompute: boolean) => {
    const p = params.slice();
    const grads = new Float32Array(p.length);
    const model = new (engine().Model)(c, p, grads);
    model.setRecompute(recompute);
    model.forward(tokens, starts, targets, new Float32Array(8), true, null);
    p.fill(1.5, norm.offset, norm.offset + norm.size);
    model.backward(dlogp);
    return grads;
  };
  const kept = gradAfterChange(false);
  const recomputed = gradAfterChange(true);
  const embed = engine()
    .paramLayout(c)
    .tensors.find((t) => t.name === "model.embed_tokens.weight")!;
  const differs = (a: Float32Array, b: Float32Array, t: { offset: number; size: number }) =>
    a.subarray(t.offset, t.offset + t.size).some((x, i) => x !== b[t.offset + i]);
  assert.ok(differs(kept, recomputed, embed), "backward used the activations kept by the forward");
});

test("recompute: the default batch of tokens grows; a batch size set by hand stays", () => {
  const big = CausalLM.init(
    parseConfig({ ...HF, hidden_size: 192, intermediate_size: 512, num_hidden_layers: 24 }, "big"),
    1,
  );
  const kept = big.maxBatchTokens;
  big.recompute = true;
  assert.ok(big.maxBatchTokens >= 4 * kept, `${kept} -> ${big.maxBatchTokens}`);
  big.recompute = false;
  assert.equal(big.maxBatchTokens, kept);
  big.maxBatchTokens = 100;
  big.recompute = true;
  assert.equal(big.maxBatchTokens, 100);
});
