/**
 * LoRA in the engine, in float64 (Model64): the adapter's gradients against central finite differences
 * with the base frozen (no base gradient buffer at all), the base's gradients with a frozen adapter
 * applied, and the forward with the adapter unmerged against the forward of the merged weights.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine, type NativeConfig, type NativeLoraSpec } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { checkGradients, PACKED, weightedLogprobLoss } from "./gradcheck.js";

// GQA, q/k/v and o_proj biases: every group of projections with outputs of different widths
const config = parseConfig(
  {
    vocab_size: 23,
    hidden_size: 12,
    intermediate_size: 10,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    attention_bias: true,
  },
  "lora gradcheck",
);
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const { tokens, starts, targets } = PACKED;

function randomArray(n: number, rng: Rng, std: number): Float64Array {
  return Float64Array.from({ length: n }, () => rng.normal() * std);
}

function setup(c: NativeConfig, spec: NativeLoraSpec, seed: number) {
  const e = engine();
  const rng = new Rng(seed);
  const params = randomArray(e.paramLayout(c).total, rng, 0.3);
  const lora = e.loraLayout(c, spec);
  // B nonzero (PEFT starts it at zero) so that every path carries a gradient
  const loraParams = randomArray(lora.total, rng, 0.3);
  const weights = Float64Array.from(targets, () => rng.normal());
  return { params, lora, loraParams, weights };
}

for (const spec of [
  { rank: 3, scale: 0.7, targets: ALL },
  { rank: 2, scale: 1.9, targets: ["k_proj", "o_proj", "up_proj"] },
]) {
  test(`engine: LoRA gradients equal float64 finite differences, base frozen (${spec.targets.length} targets)`, () => {
    const { params, lora, loraParams, weights } = setup(config, spec, 5);
    const loraGrads = new Float64Array(lora.total);
    const model = new (engine().Model64)(config, params, null);
    model.setLora(spec, loraParams, loraGrads);
    const loss = weightedLogprobLoss(model, weights);
    assert.equal(lora.tensors.length, 2 * spec.targets.length * config.numLayers);
    checkGradients(lora.tensors, loraParams, loraGrads, loss, { samples: 10 });
  });
}

test("engine: base gradients stay exact with a frozen adapter applied", () => {
  const spec = { rank: 2, scale: 1.3, targets: ALL };
  const { params, loraParams, weights } = setup(config, spec, 6);
  const grads = new Float64Array(params.length);
  const model = new (engine().Model64)(config, params, grads);
  model.setLora(spec, loraParams, null);
  const loss = weightedLogprobLoss(model, weights);
  checkGradients(engine().paramLayout(config).tensors, params, grads, loss, { samples: 10 });
});

test("engine: a frozen base with no adapter that trains refuses to keep activations for backward", () => {
  const spec = { rank: 2, scale: 1, targets: ["q_proj"] };
  const { params, loraParams } = setup(config, spec, 7);
  const model = new (engine().Model64)(config, params, null);
  model.setLora(spec, loraParams, null);
  const logp = new Float64Array(tokens.length);
  assert.throws(() => model.forward(tokens, starts, targets, logp, true, null), /no adapter that trains/);
});

test("engine: merged weights give the forward of the unmerged adapter (float64)", () => {
  const spec = { rank: 3, scale: 0.45, targets: ALL };
  const { params, lora, loraParams } = setup(config, spec, 8);
  const e = engine();
  const unmerged = new Float64Array(tokens.length);
  const lastUnmerged = new Float64Array(2 * config.vocabSize);
  const model = new e.Model64(config, params, null);
  model.setLora(spec, loraParams, null);
  model.forward(tokens, starts, targets, unmerged, false, lastUnmerged);

  // W += scale B A, by hand in float64
  const slots = new Map(e.paramLayout(config).tensors.map((t) => [t.name, t]));
  const merged = Float64Array.from(params);
  for (const a of lora.tensors.filter((t) => t.name.endsWith("lora_A.weight"))) {
    const b = lora.tensors.find((t) => t.name === a.name.replace("lora_A", "lora_B"))!;
    const w = slots.get(a.name.replace("base_model.model.", "").replace(".lora_A", ""))!;
    const [out, inDim] = w.shape as [number, number];
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inDim; j++) {
        let s = 0;
        for (let k = 0; k < spec.rank; k++)
          s += loraParams[b.offset + i * spec.rank + k]! * loraParams[a.offset + k * inDim + j]!;
        const at = w.offset + i * inDim + j;
        merged[at] = merged[at]! + spec.scale * s;
      }
  }
  const plain = new Float64Array(tokens.length);
  const lastPlain = new Float64Array(2 * config.vocabSize);
  new e.Model64(config, merged, null).forward(tokens, starts, targets, plain, false, lastPlain);
  for (let n = 0; n < plain.length; n++) assert.ok(Math.abs(plain[n]! - unmerged[n]!) < 1e-12, `row ${n}`);
  for (let i = 0; i < lastPlain.length; i++) assert.ok(Math.abs(lastPlain[i]! - lastUnmerged[i]!) < 1e-12);
  // and the adapter changed something
  model.setLora(null);
  const base = new Float64Array(tokens.length);
  model.forward(tokens, starts, targets, base, false, null);
  assert.ok(base.some((x, n) => Math.abs(x - plain[n]!) > 1e-3));
});
