/** Random tiny checkpoints for tests: a config.json object parsed by the engine's parser, seeded weights. */
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { type ModelConfig, parseConfig } from "../src/model/config.js";

export interface RandomModel {
  config: ModelConfig;
  params: Float32Array;
}

export function randomModel(hf: Record<string, unknown>, seed: number): RandomModel {
  const config = parseConfig({ max_position_embeddings: 512, rms_norm_eps: 1e-5, ...hf }, "test config");
  const layout = engine().paramLayout(config);
  const params = new Float32Array(layout.total);
  const rng = new Rng(seed);
  for (const t of layout.tensors) {
    const norm = t.name.endsWith("norm.weight");
    const scale = t.name.endsWith(".bias") ? 0.1 : 0.6 / Math.sqrt(t.shape[t.shape.length - 1]!);
    for (let i = 0; i < t.size; i++)
      params[t.offset + i] = norm ? 1 + 0.1 * rng.normal() : scale * rng.normal();
  }
  return { config, params };
}

/**
 * The checkpoints the parity tests run on: plain, GQA, tied embeddings, Qwen2-style q/k/v biases, and
 * llama3 RoPE scaling with thresholds small enough that some frequencies are scaled and some smoothed.
 */
export const TINY_CONFIGS: Record<string, Record<string, unknown>> = {
  plain: {
    vocab_size: 260,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
  },
  gqa: {
    vocab_size: 260,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 8,
    num_key_value_heads: 2,
  },
  tied: {
    vocab_size: 260,
    hidden_size: 48,
    intermediate_size: 80,
    num_hidden_layers: 3,
    num_attention_heads: 3,
    tie_word_embeddings: true,
  },
  llama3rope: {
    vocab_size: 260,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  },
  qwen2: {
    model_type: "qwen2",
    vocab_size: 260,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
};
