/** The benches' model sizes, as Hugging Face config.json objects. */
export const BENCH_CONFIGS = {
  S: {
    vocab_size: 256,
    hidden_size: 128,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    intermediate_size: 344,
  },
  M: {
    vocab_size: 256,
    hidden_size: 512,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    intermediate_size: 1376,
  },
  /** SmolLM2-135M's shapes */
  L: {
    vocab_size: 49152,
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    rope_theta: 100000,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
  },
  /** Qwen2.5-0.5B's shapes (q/k/v biases) */
  Q: {
    model_type: "qwen2",
    vocab_size: 151936,
    hidden_size: 896,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    intermediate_size: 4864,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  },
};
