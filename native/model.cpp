#include "model.h"

#include <cmath>

#include "kernels.h"

namespace dno {

std::vector<TensorSlot> param_layout(const LlamaConfig& c) {
  const int64_t C = c.hidden, I = c.intermediate, V = c.vocab, Q = c.q_dim(), K = c.kv_dim();
  std::vector<TensorSlot> out;
  int64_t offset = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    out.push_back({name, std::move(shape), offset, size});
    offset += size;
  };
  add("model.embed_tokens.weight", {V, C});
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {C});
    add(p + "self_attn.q_proj.weight", {Q, C});
    add(p + "self_attn.k_proj.weight", {K, C});
    add(p + "self_attn.v_proj.weight", {K, C});
    if (c.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {Q});
      add(p + "self_attn.k_proj.bias", {K});
      add(p + "self_attn.v_proj.bias", {K});
    }
    add(p + "self_attn.o_proj.weight", {C, Q});
    if (c.o_bias) add(p + "self_attn.o_proj.bias", {C});
    add(p + "post_attention_layernorm.weight", {C});
    add(p + "mlp.gate_proj.weight", {I, C});
    add(p + "mlp.up_proj.weight", {I, C});
    add(p + "mlp.down_proj.weight", {C, I});
  }
  add("model.norm.weight", {C});
  if (!c.tied) add("lm_head.weight", {V, C});
  return out;
}

int64_t param_count(const LlamaConfig& c) {
  const auto layout = param_layout(c);
  return layout.back().offset + layout.back().size;
}

std::vector<double> rope_inv_freq(const LlamaConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(c.rope_theta, double(2 * i) / c.head_dim);
  if (!c.rope_llama3) return inv;
  const double lo = c.rope_low_freq_factor, hi = c.rope_high_freq_factor, old = c.rope_original_max_pos;
  for (double& f : inv) {
    const double wavelen = 2 * M_PI / f;
    const double scaled = wavelen > old / lo ? f / c.rope_factor : f;
    if (wavelen >= old / hi && wavelen <= old / lo) {
      const double smooth = (old / wavelen - lo) / (hi - lo);
      f = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
    } else {
      f = scaled;
    }
  }
  return inv;
}

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, double bc1, double bc2) {
  const float decay = 1.0f - lr * weight_decay;
  const float step = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float mi = m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
      const float vi = v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
      p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
    }
  });
}

double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(std::max<int64_t>(chunks, 1)), 0.0);
  parallel_for(chunks, 4, [&](int64_t b, int64_t e) {
    for (int64_t ch = b; ch < e; ++ch) {
      // Independent partial sums: one dependent chain of double adds would bound the speed, not memory.
      constexpr int kLanes = 8;
      double s[kLanes] = {};
      const int64_t i0 = ch * kChunk, end = std::min(n, i0 + kChunk);
      int64_t i = i0;
      for (; i + kLanes <= end; i += kLanes)
        for (int l = 0; l < kLanes; ++l) s[l] += double(x[i + l]) * x[i + l];
      for (; i < end; ++i) s[0] += double(x[i]) * x[i];
      double sum = 0;
      for (double v : s) sum += v;
      partial[size_t(ch)] = sum;
    }
  });
  double total = 0;
  for (double s : partial) total += s;  // fixed order: the same result for any thread count
  return total;
}

void scale_inplace(float* x, int64_t n, float s) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= s;
  });
}

}  // namespace dno
