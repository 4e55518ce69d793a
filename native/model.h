// The Llama-family decoder: its configuration and where each weight lives in one flat buffer.
// Shared by the training engine (model.cpp) and KV-cache sampling (generate.cpp); keep stable.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace dno {

// Validated in TypeScript (src/model/config.ts) from a Hugging Face config.json.
struct LlamaConfig {
  int vocab = 0;         // V
  int hidden = 0;        // C
  int intermediate = 0;  // I
  int layers = 0;
  int heads = 0;     // H query heads
  int kv_heads = 0;  // KV heads; query head h reads kv head h / (H / KV)
  int head_dim = 0;  // D, even
  double rms_eps = 1e-6;
  double rope_theta = 10000.0;
  bool rope_llama3 = false;  // llama3 frequency scaling with the four fields below
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  double rope_original_max_pos = 8192.0;
  bool qkv_bias = false;    // q/k/v_proj biases (Qwen2; Llama attention_bias)
  bool o_bias = false;      // o_proj bias (Llama attention_bias)
  bool tied = false;        // lm_head is embed_tokens
  int sliding_window = 0;   // Mistral: query i sees key j iff 0 <= i - j < window; 0 = no window
  int pad_token = -1;       // this embed_tokens row gets no gradient from the input lookup (HF padding_idx)

  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
};

// One parameter tensor: its Hugging Face name, shape and place in the flat parameter buffer.
struct TensorSlot {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;  // in elements
  int64_t size;    // in elements
};

// Every parameter in buffer order (gradients and optimizer moments use the same layout):
//   model.embed_tokens.weight (V,C)
//   per layer i, prefix model.layers.{i}.:
//     input_layernorm.weight (C)
//     self_attn.q_proj.weight (H*D,C), self_attn.k_proj.weight (KV*D,C), self_attn.v_proj.weight (KV*D,C)
//       adjacent, so together they are one (H*D+2*KV*D, C) matrix: one GEMM projects q, k and v
//     self_attn.{q,k,v}_proj.bias (H*D), (KV*D), (KV*D), adjacent, if qkv_bias
//     self_attn.o_proj.weight (C,H*D); self_attn.o_proj.bias (C) if o_bias
//     post_attention_layernorm.weight (C)
//     mlp.gate_proj.weight (I,C), mlp.up_proj.weight (I,C), adjacent: one (2I, C) matrix
//     mlp.down_proj.weight (C,I)
//   model.norm.weight (C)
//   lm_head.weight (V,C) unless tied
std::vector<TensorSlot> param_layout(const LlamaConfig& c);
int64_t param_count(const LlamaConfig& c);

template <typename T>
struct LayerWeights {
  T* attn_norm;  // (C) input_layernorm
  T* wqkv;       // (H*D + 2*KV*D, C): q_proj rows, then k_proj, then v_proj
  T* bqkv;       // (H*D + 2*KV*D) or nullptr
  T* wo;         // (C, H*D)
  T* bo;         // (C) or nullptr
  T* mlp_norm;   // (C) post_attention_layernorm
  T* wgate_up;   // (2I, C): gate_proj rows, then up_proj rows
  T* wdown;      // (C, I)
};

template <typename T>
struct LlamaWeights {
  T* embed;  // (V, C)
  std::vector<LayerWeights<T>> layers;
  T* final_norm;  // (C)
  T* lm_head;     // (V, C); the same pointer as embed when tied
};

// Carves a flat buffer laid out by param_layout (parameters, or gradients) into named tensors.
template <typename T>
LlamaWeights<T> bind_weights(const LlamaConfig& c, T* base) {
  const int64_t C = c.hidden, I = c.intermediate, V = c.vocab, QKV = c.qkv_dim();
  LlamaWeights<T> w;
  T* p = base;
  auto take = [&p](int64_t n) {
    T* t = p;
    p += n;
    return t;
  };
  w.embed = take(V * C);
  w.layers.resize(c.layers);
  for (auto& l : w.layers) {
    l.attn_norm = take(C);
    l.wqkv = take(QKV * C);
    l.bqkv = c.qkv_bias ? take(QKV) : nullptr;
    l.wo = take(C * c.q_dim());
    l.bo = c.o_bias ? take(C) : nullptr;
    l.mlp_norm = take(C);
    l.wgate_up = take(2 * I * C);
    l.wdown = take(C * I);
  }
  w.final_norm = take(C);
  w.lm_head = c.tied ? w.embed : take(V * C);
  return w;
}

// RoPE inverse frequencies theta^(-2i/D), i < D/2, with llama3 scaling applied (as HF computes them).
std::vector<double> rope_inv_freq(const LlamaConfig& c);

// cos/sin of position * inverse frequency for positions [0, max_len), (max_len, D/2) row-major;
// angles in double, rounded once to T.
template <typename T>
void rope_tables(const LlamaConfig& c, int max_len, std::vector<T>& cos, std::vector<T>& sin) {
  const int half = c.head_dim / 2;
  const std::vector<double> inv = rope_inv_freq(c);
  cos.resize(size_t(max_len) * half);
  sin.resize(size_t(max_len) * half);
  for (int p = 0; p < max_len; ++p)
    for (int i = 0; i < half; ++i) {
      const double angle = double(p) * inv[i];
      cos[size_t(p) * half + i] = T(std::cos(angle));
      sin[size_t(p) * half + i] = T(std::sin(angle));
    }
}

}  // namespace dno
