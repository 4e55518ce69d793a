/**
 * The whole decoder's gradient against central finite differences, in float64 (Model64): every
 * kernel together, on a tiny config that takes every optional path (GQA, q/k/v and o_proj biases,
 * tied embeddings, a pad token, llama3 RoPE, a sliding window) and on a plain untied one.
 */
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { checkGradients, PACKED, weightedLogprobLoss } from "./gradcheck.js";

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
    // the tokens include the pad id
    const weights = Float64Array.from(PACKED.targets, () => rng.normal());
    const loss = weightedLogprobLoss(model, weights);
    checkGradients(tensors, params, grads, loss, {
      samples: 12,
      // HF's padding_idx: the pad row's lookup gradient is dropped on purpose (the FD would see it)
      skip: (slot, i) =>
        slot.name === "model.embed_tokens.weight" &&
        Math.floor((i - slot.offset) / config.hiddenSize) === config.padTokenId,
    });
  });
}
