/**
 * The whole decoder's gradient against central finite differences, in float64 (Model64): every
 * kernel together, on a tiny config that takes every optional path (GQA, q/k/v and o_proj biases,
 * tied embeddings, a pad token, llama3 RoPE, a sliding window) and on a plain untied one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";

const base = {
  vocab_size: 23,
  hidden_size: 12,
  intermediate_size: 10,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};
const configs = {
  everything: parseConfig(
    {
      ...base,
      model_type: "mistral",
      head_dim: 4,
      num_key_value_heads: 2,
      sliding_window: 4,
      tie_word_embeddings: true,
      pad_token_id: 2,
      rope_scaling: {
        rope_type: "llama3",
        factor: 4,
        low_freq_factor: 1,
        high_freq_factor: 2,
        original_max_position_embeddings: 8,
      },
    },
    "everything",
  ),
  llamaBiases: parseConfig({ ...base, attention_bias: true, head_dim: 4 }, "llamaBiases"),
};

for (const [name, config] of Object.entries(configs)) {
  test(`engine: whole-model gradient equals float64 finite differences (${name})`, () => {
    const e = engine();
    const { tensors, total } = e.paramLayout(config);
    const rng = new Rng(3);
    const params = Float64Array.from({ length: total }, () => rng.normal() * 0.3);
    const grads = new Float64Array(total);
    const model = new e.Model64(config, params, grads);
    // two packed sequences (lengths 7 and 5), tokens include the pad id, most rows scored
    const tokens = Int32Array.from([1, 2, 5, 7, 2, 9, 11, 4, 3, 2, 8, 22]);
    const starts = Int32Array.from([0, 7, 12]);
    const targets = Int32Array.from([5, -1, 7, 2, 9, 11, 0, 3, 2, -1, 22, 1]);
    const weights = Float64Array.from(targets, () => rng.normal());
    const logp = new Float64Array(tokens.length);
    const loss = () => {
      model.forward(tokens, starts, targets, logp, false, null);
      return logp.reduce((s, lp, n) => s + lp * weights[n]!, 0);
    };
    model.forward(tokens, starts, targets, logp, true, null);
    model.backward(weights);
    assert.ok(grads.some((g) => g !== 0));
    const h = 1e-5;
    for (const slot of tensors) {
      let worst = 0;
      let scale = 0;
      for (let k = 0; k < Math.min(slot.size, 12); k++) {
        const i = slot.offset + ((k * 7919) % slot.size);
        const row = Math.floor((i - slot.offset) / config.hiddenSize);
        // HF's padding_idx: the pad row's lookup gradient is dropped on purpose (the FD would see it)
        if (slot.name === "model.embed_tokens.weight" && row === config.padTokenId) continue;
        const x = params[i]!;
        params[i] = x + h;
        const up = loss();
        params[i] = x - h;
        const down = loss();
        params[i] = x;
        const numeric = (up - down) / (2 * h);
        worst = Math.max(worst, Math.abs(numeric - grads[i]!));
        scale = Math.max(scale, Math.abs(numeric));
      }
      assert.ok(
        worst <= 1e-7 * Math.max(scale, 1),
        `${slot.name}: analytic vs numeric differ by ${worst} (scale ${scale})`,
      );
    }
  });
}
