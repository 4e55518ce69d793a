// Training-time forward and backward of the whole decoder over packed sequences.
#pragma once
#include <cstdint>
#include <vector>

#include <optional>

#include "kernels.h"
#include "lora.h"
#include "model.h"

namespace dno {

// A batch is S sequences packed back to back: sequence s is rows [starts[s], starts[s+1]) at positions
// 0, 1, ... (no padding rows are ever computed). Buffers grow to the largest batch seen and are reused,
// so a training loop allocates nothing after its first step.
template <typename T>
class Llama {
 public:
  // params and grads are laid out by param_layout and owned by the caller. grads null: the base is frozen,
  // no gradient of it is computed (backward then needs an adapter that trains).
  Llama(const LlamaConfig& c, T* params, T* grads);

  // Applies an adapter (laid out by lora_layout, owned by the caller) unmerged in every later forward;
  // with lora_grads, backward adds the adapter's gradients there. clear_lora removes it.
  void set_lora(const LoraSpec& spec, T* lora_params, T* lora_grads);
  void clear_lora() {
    lora_.reset();
    ready_for_backward_ = false;
  }

  // tokens (N); targets (N): the token scored at each row (the next one), or -1 for none.
  // logp (N): log p(targets[n] | rows before n of its sequence), 0 where targets[n] < 0.
  // keep: keep the activations for backward. last_logits (S, V) or null: each sequence's last-row logits.
  void forward(const int32_t* tokens, const int32_t* starts, int S, const int32_t* targets, T* logp, bool keep,
               T* last_logits);

  // grads += d(sum_n dlogp[n] * logp[n]) / d(params), for the last forward run with keep = true.
  void backward(const T* dlogp);

  const LlamaConfig& config() const { return c_; }

  // Mixed precision (float only): the GEMMs of forward and backward take bf16 inputs and accumulate in
  // float32; parameters, gradients, norms, softmax, the head's log-softmax and the residual stay float32.
  void set_precision(Precision p);

  // Activation recomputation (gradient checkpointing): a forward with keep = true then keeps only each
  // layer's input (the residual stream), and backward recomputes a layer's activations right before that
  // layer's backward. Gradients are bit-identical; training holds one layer's activations instead of all.
  void set_recompute(bool on) {
    recompute_ = on;
    ready_for_backward_ = false;
  }

  // The head's memory: logits are computed about chunk_values at a time (whole vocabulary chunks), and a
  // training forward without recomputation keeps up to cache_bytes of them for backward, which recomputes
  // the rest (the same GEMMs: the same values, bit-identical gradients). Takes effect at the next forward.
  struct HeadMemory {
    int64_t chunk_values = int64_t(1) << 22;
    int64_t cache_bytes = int64_t(512) << 20;
  };
  void set_head_memory(const HeadMemory& h) {
    head_ = h;
    ready_for_backward_ = false;
  }

 private:
  struct Acts {  // views into acts_ for the current batch
    T *resid, *xn1, *rstd1, *qkv, *att_lse, *attn, *mid, *xn2, *rstd2, *gu, *act, *xnf, *rstdf, *hm, *lse, *lp,
        *logits;
  };
  struct LayerActs {  // one layer's activations
    T *xn1, *rstd1, *qkv, *att_lse, *attn, *mid, *xn2, *rstd2, *gu, *act;
  };
  bool keeps_layers() const { return keep_ && !recompute_; }  // a slot per layer, else one shared slot
  LayerActs layer_acts(int l) const;
  T* resid(int l) const;  // the residual stream entering layer l (l = layers: leaving the last)
  // Layer l from resid(l); with to_next it writes resid(l + 1), else (recomputing) it stops at the
  // activations backward reads.
  void layer_forward(int l, bool to_next);
  void carve(int N, int M, int S);
  void ensure_rope(int max_len);
  void lm_head_rows(T* out, const T* rows, int m);
  T* chunk_logits(int chunk) const;  // where vocabulary chunk `chunk`'s logits go
  void head_forward();
  void head_backward(T* dh);
  T* lora_u(int l, int group);  // the group's (N, n r) adapter activations x A^T in layer l

  LlamaConfig c_;
  LlamaWeights<T> w_, g_;
  bool trains_base_;
  std::optional<LoraAdapter<T>> lora_;
  // The current batch.
  int N_ = 0, M_ = 0, S_ = 0;
  int vocab_chunk_ = 0;  // columns of the head's logits computed at a time
  int cached_chunks_ = 0;  // chunks whose logits the last training forward kept for backward
  HeadMemory head_;
  Precision precision_ = Precision::kFp32;
  bool keep_ = false, recompute_ = false, ready_for_backward_ = false;
  std::vector<int32_t> tokens_, pos_, starts_, rows_m_, targets_m_;
  Acts a_{};
  std::vector<T> acts_, grads_scratch_, cos_, sin_, lora_acts_;
  int rope_len_ = 0;
};

extern template class Llama<float>;
extern template class Llama<double>;

}  // namespace dno
