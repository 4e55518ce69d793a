// LoRA (Hu et al. 2021) on the decoder's projections, as PEFT computes it: a targeted projection
// y = x W^T becomes y = x W^T + scale * (x A^T) B^T with A (r, in), B (out, r) and the base W frozen.
// The adapters live in one flat buffer laid out by lora_layout (gradients and AdamW moments alike);
// the training engine (llama.cpp) and KV-cache sampling (generate.cpp) both apply them unmerged.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"
#include "model.h"

namespace dno {

// PEFT's target_modules names, in buffer order within a layer.
enum LoraTarget : int { kLoraQ, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kLoraTargetCount };
const char* lora_target_name(int target);

// Projections that read the same input share one A GEMM: their A matrices lie stacked in the buffer.
enum LoraGroupId : int { kGroupQkv, kGroupO, kGroupGateUp, kGroupDown, kLoraGroupCount };

struct LoraSpec {
  int rank = 0;
  double scale = 0;      // lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA
  uint32_t targets = 0;  // bit t set: LoraTarget t is adapted
  bool has(int t) const { return (targets >> t) & 1u; }
};

// Every adapter tensor in buffer order, PEFT key names, e.g.
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight (r, in) and .lora_B.weight (out, r).
// Per layer and per group (q/k/v, o, gate/up, down): the targeted projections' A matrices, then their B.
std::vector<TensorSlot> lora_layout(const LlamaConfig& c, const LoraSpec& s);
int64_t lora_param_count(const LlamaConfig& c, const LoraSpec& s);

// One group of one layer, bound to a buffer: n targeted projections reading the same (N, in) input.
template <typename T>
struct LoraGroup {
  int n = 0;
  int in = 0;
  T* a = nullptr;                   // (n * r, in): the A matrices stacked
  std::array<T*, 3> b{};            // module m's B, (out[m], r)
  std::array<int, 3> out{}, col{};  // module m writes columns [col, col + out) of the group's output rows
};

template <typename T>
using LoraLayer = std::array<LoraGroup<T>, kLoraGroupCount>;

template <typename T>
std::vector<LoraLayer<T>> bind_lora(const LlamaConfig& c, const LoraSpec& s, T* base);

// The adapters' GEMMs are small (one side is r): the independent ones of a group run as tasks of one
// parallel_for, each GEMM on one thread, rather than each GEMM across the pool with its own hand-offs.

// u (N, n r) = x (N, in) A^T
template <typename T>
void lora_project(T* u, const T* x, int N, const LoraGroup<T>& g, int r) {
  if (g.n == 0) return;
  gemm<T>(false, true, N, g.n * r, g.in, T(1), x, g.in, g.a, g.in, T(0), u, g.n * r);
}

// u (N, n r) = x (N, in) A^T; y (N, ldy) columns of module m += scale * u_m B_m^T.
template <typename T>
void lora_forward(T* y, int ldy, T* u, const T* x, int N, const LoraGroup<T>& g, int r, T scale) {
  if (g.n == 0) return;
  const int nr = g.n * r;
  lora_project(u, x, N, g, r);
  parallel_for(g.n, 1, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m)
      gemm<T>(false, true, N, g.out[m], r, scale, u + m * r, nr, g.b[m], r, T(1), y + g.col[m], ldy);
  });
}

// Given dy (N, ldy) and the forward's x and u: du_m = scale dy_m B_m (du is scratch, (N, n r)),
// dx (N, in) += du A unless dx is null, and with grad (a frozen adapter has none) dB_m += scale dy_m^T u_m,
// dA += du^T x.
template <typename T>
void lora_backward(T* dx, const LoraGroup<T>* grad, T* du, const T* dy, int ldy, const T* x, const T* u, int N,
                   const LoraGroup<T>& g, int r, T scale) {
  if (g.n == 0) return;
  const int nr = g.n * r;
  parallel_for(2 * g.n, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int m = int(task / 2);
      if (task % 2 == 0)
        gemm<T>(false, false, N, r, g.out[m], scale, dy + g.col[m], ldy, g.b[m], r, T(0), du + m * r, nr);
      else if (grad)
        gemm<T>(true, false, g.out[m], r, N, scale, dy + g.col[m], ldy, u + m * r, nr, T(1), grad->b[m], r);
    }
  });
  parallel_for(2, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      if (task == 0 && grad) gemm<T>(true, false, nr, g.in, N, T(1), du, nr, x, g.in, T(1), grad->a, g.in);
      if (task == 1 && dx) gemm<T>(false, false, N, g.in, nr, T(1), du, nr, g.a, g.in, T(1), dx, g.in);
    }
  });
}

// An adapter attached to a decoder: its spec, weights, and gradients when it trains.
template <typename T>
struct LoraAdapter {
  LoraSpec spec;
  std::vector<LoraLayer<T>> w, g;  // g is empty without gradients
  bool trains() const { return !g.empty(); }
};

}  // namespace dno
