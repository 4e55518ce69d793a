#include "llama.h"

#include "profile.h"

#include <type_traits>

#include <stdexcept>
#include <string>

namespace dno {

// Runs one statement under the phase timer.
#define TIMED(phase, stmt) \
  do {                     \
    PhaseTimer t_(phase);  \
    stmt;                  \
  } while (0)

template <typename T>
Llama<T>::Llama(const LlamaConfig& c, T* params, T* grads)
    : c_(c), w_(bind_weights(c, params)), g_(bind_weights(c, grads ? grads : params)), trains_base_(grads != nullptr) {}

template <typename T>
void Llama<T>::set_lora(const LoraSpec& spec, T* lora_params, T* lora_grads) {
  LoraAdapter<T> a{spec, bind_lora(c_, spec, lora_params), {}};
  if (lora_grads) a.g = bind_lora(c_, spec, lora_grads);
  lora_ = std::move(a);
  ready_for_backward_ = false;
}

template <typename T>
T* Llama<T>::lora_u(int l, int group) {
  const LoraLayer<T>& groups = lora_->w[size_t(l)];
  int64_t before = 0, per_layer = 0;
  for (int g = 0; g < kLoraGroupCount; ++g) {
    if (g < group) before += groups[size_t(g)].n;
    per_layer += groups[size_t(g)].n;
  }
  const int64_t r = lora_->spec.rank;
  return lora_acts_.data() + (int64_t(keeps_layers() ? l : 0) * per_layer + before) * N_ * r;
}

template <typename T>
typename Llama<T>::LayerActs Llama<T>::layer_acts(int l) const {
  const int64_t N = N_, C = c_.hidden, I = c_.intermediate, k = keeps_layers() ? l : 0;
  const int64_t QKV = c_.qkv_dim(), QD = c_.q_dim(), H = c_.heads;
  return {a_.xn1 + k * N * C, a_.rstd1 + k * N, a_.qkv + k * N * QKV,  a_.att_lse + k * N * H, a_.attn + k * N * QD,
          a_.mid + k * N * C, a_.xn2 + k * N * C, a_.rstd2 + k * N, a_.gu + k * N * 2 * I,  a_.act + k * N * I};
}

template <typename T>
T* Llama<T>::resid(int l) const {
  return a_.resid + int64_t(keep_ ? l : l % 2) * N_ * c_.hidden;
}

template <typename T>
void Llama<T>::set_precision(Precision p) {
  if (p == Precision::kBf16 && !std::is_same_v<T, float>) throw std::runtime_error("bf16 needs a float32 model");
  precision_ = p;
}

template <typename T>
void Llama<T>::ensure_rope(int max_len) {
  if (max_len <= rope_len_) return;
  rope_tables(c_, max_len, cos_, sin_);
  rope_len_ = max_len;
}

// Lays out this batch's activations in acts_ (growing it only when the batch is the largest yet).
template <typename T>
void Llama<T>::carve(int N, int M, int S) {
  const int64_t C = c_.hidden, I = c_.intermediate, QKV = c_.qkv_dim(), QD = c_.q_dim(), V = c_.vocab;
  const int64_t Ls = keeps_layers() ? c_.layers : 1;  // layer slots
  const int64_t Rs = keep_ ? c_.layers + 1 : 2;  // residual stream slots
  // The head's logits, (M, vocab_chunk_) at a time: about head_.chunk_values, however large the vocabulary.
  vocab_chunk_ = int(std::min<int64_t>(V, std::max<int64_t>(256, head_.chunk_values / std::max(M, 1))));
  // A training forward keeps the logits of its first chunks, as many as head_.cache_bytes hold (none when
  // recomputing), for the backward to use instead of recomputing them; the rest share one more slot.
  const int64_t chunk_values = int64_t(std::max(M, 1)) * vocab_chunk_, chunks = (V + vocab_chunk_ - 1) / vocab_chunk_;
  const int64_t cache_bytes = keep_ && !recompute_ ? head_.cache_bytes : 0;
  cached_chunks_ = int(std::min<int64_t>(chunks, cache_bytes / int64_t(sizeof(T) * chunk_values)));
  const int64_t logit_slots = cached_chunks_ + (cached_chunks_ < chunks ? 1 : 0);
  const int64_t sizes[] = {
      Rs * N * C, Ls * N * C, Ls * N, Ls * N * QKV, Ls * N * c_.heads, Ls * N * QD, Ls * N * C, Ls * N * C, Ls * N,
      Ls * N * 2 * I, Ls * N * I, N * C, N, std::max<int64_t>(M, S) * C, M, M, logit_slots * chunk_values};
  T** views[] = {&a_.resid, &a_.xn1, &a_.rstd1, &a_.qkv, &a_.att_lse, &a_.attn, &a_.mid, &a_.xn2, &a_.rstd2,
                 &a_.gu,    &a_.act, &a_.xnf,   &a_.rstdf, &a_.hm,  &a_.lse,  &a_.lp,  &a_.logits};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (int64_t(acts_.size()) < total) {
    acts_.clear();
    acts_.shrink_to_fit();
    acts_.resize(size_t(total));
  }
  T* p = acts_.data();
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
    *views[i] = p;
    p += sizes[i];
  }
}

// out (m, V) = rows (m, C) @ lm_head^T
template <typename T>
void Llama<T>::lm_head_rows(T* out, const T* rows, int m) {
  TIMED(kLmHead, gemm<T>(false, true, m, c_.vocab, c_.hidden, T(1), rows, c_.hidden, w_.lm_head, c_.hidden, T(0), out, c_.vocab));
}

template <typename T>
T* Llama<T>::chunk_logits(int chunk) const {
  return a_.logits + int64_t(std::min(chunk, cached_chunks_)) * M_ * vocab_chunk_;
}

// lp (M) = log p(target) of the scored rows hm (M, C), their lse (M) kept for backward: the logits of one
// vocabulary chunk at a time, the log-sum-exp accumulated over the chunks.
template <typename T>
void Llama<T>::head_forward() {
  const int M = M_, C = c_.hidden, V = c_.vocab;
  for (int v0 = 0, chunk = 0; v0 < V; v0 += vocab_chunk_, ++chunk) {
    const int vc = std::min(vocab_chunk_, V - v0);
    T* logits = chunk_logits(chunk);
    TIMED(kLmHead, gemm<T>(false, true, M, vc, C, T(1), a_.hm, C, w_.lm_head + int64_t(v0) * C, C, T(0), logits, vc));
    TIMED(kLmHead, logsoftmax_chunk_forward(a_.lse, a_.lp, logits, targets_m_.data(), M, v0, vc));
  }
  for (int m = 0; m < M; ++m) a_.lp[m] -= a_.lse[m];
}

// dh (M, C) = d/dhm of sum_m lp[m] * log p(target m) (lp holds dlogp here); grads of lm_head += theirs
// unless the base is frozen.
// Each chunk's logits (kept by the forward, else recomputed: the same GEMM, the same values) are turned
// into d logits in place and consumed by two GEMMs.
template <typename T>
void Llama<T>::head_backward(T* dh) {
  const int M = M_, C = c_.hidden, V = c_.vocab;
  for (int v0 = 0, chunk = 0; v0 < V; v0 += vocab_chunk_, ++chunk) {
    const int vc = std::min(vocab_chunk_, V - v0);
    const T* w = w_.lm_head + int64_t(v0) * C;
    T* logits = chunk_logits(chunk);
    if (chunk >= cached_chunks_)
      TIMED(kLmHead, gemm<T>(false, true, M, vc, C, T(1), a_.hm, C, w, C, T(0), logits, vc));
    TIMED(kLmHead, logsoftmax_chunk_backward(logits, a_.lp, a_.lse, targets_m_.data(), M, v0, vc));
    TIMED(kLmHead, gemm<T>(false, false, M, C, vc, T(1), logits, vc, w, C, T(v0 == 0 ? 0 : 1), dh, C));
    if (trains_base_)
      TIMED(kLmHead, gemm<T>(true, false, vc, C, M, T(1), logits, vc, a_.hm, C, T(1), g_.lm_head + int64_t(v0) * C, C));
  }
  cached_chunks_ = 0;  // they now hold d logits: another backward recomputes
}

template <typename T>
void Llama<T>::layer_forward(int l, bool to_next) {
  const int N = N_, C = c_.hidden, I = c_.intermediate, QKV = c_.qkv_dim(), QD = c_.q_dim();
  const int H = c_.heads, KV = c_.kv_heads, D = c_.head_dim;
  const LayerWeights<T>& w = w_.layers[l];
  const LoraLayer<T>* lw = lora_ ? &lora_->w[size_t(l)] : nullptr;
  const int r = lora_ ? lora_->spec.rank : 0;
  const T ls = lora_ ? T(lora_->spec.scale) : T(0);
  const SeqBatch sb{starts_.data(), S_};
  const LayerActs a = layer_acts(l);
  const T* x = resid(l);
  TIMED(kRmsnorm, rmsnorm_forward(a.xn1, a.rstd1, x, w.attn_norm, N, C, c_.rms_eps));
  TIMED(kMatmul, gemm<T>(false, true, N, QKV, C, T(1), a.xn1, C, w.wqkv, C, T(0), a.qkv, QKV));
  if (w.bqkv) TIMED(kElementwise, bias_forward(a.qkv, w.bqkv, N, QKV));
  if (lw) TIMED(kLora, lora_forward(a.qkv, QKV, lora_u(l, kGroupQkv), a.xn1, N, (*lw)[kGroupQkv], r, ls));
  TIMED(kRope, rope_apply(a.qkv, N, QKV, 0, H, D, pos_.data(), cos_.data(), sin_.data(), false));
  TIMED(kRope, rope_apply(a.qkv, N, QKV, QD, KV, D, pos_.data(), cos_.data(), sin_.data(), false));
  TIMED(kAttention, attention_forward(a.attn, a.att_lse, a.qkv, sb, H, KV, D, c_.sliding_window));
  TIMED(kMatmul, gemm<T>(false, true, N, C, QD, T(1), a.attn, QD, w.wo, QD, T(0), a.mid, C));
  if (w.bo) TIMED(kElementwise, bias_forward(a.mid, w.bo, N, C));
  if (lw) TIMED(kLora, lora_forward(a.mid, C, lora_u(l, kGroupO), a.attn, N, (*lw)[kGroupO], r, ls));
  TIMED(kElementwise, add_inplace(a.mid, x, int64_t(N) * C));
  TIMED(kRmsnorm, rmsnorm_forward(a.xn2, a.rstd2, a.mid, w.mlp_norm, N, C, c_.rms_eps));
  TIMED(kMatmul, gemm<T>(false, true, N, 2 * I, C, T(1), a.xn2, C, w.wgate_up, C, T(0), a.gu, 2 * I));
  if (lw) TIMED(kLora, lora_forward(a.gu, 2 * I, lora_u(l, kGroupGateUp), a.xn2, N, (*lw)[kGroupGateUp], r, ls));
  TIMED(kSwiglu, swiglu_forward(a.act, a.gu, N, I));
  if (!to_next) {  // the down projection's output is resid(l + 1), still held: backward needs only its adapter's u
    if (lw) TIMED(kLora, lora_project(lora_u(l, kGroupDown), a.act, N, (*lw)[kGroupDown], r));
    return;
  }
  T* next = resid(l + 1);
  TIMED(kMatmul, gemm<T>(false, true, N, C, I, T(1), a.act, I, w.wdown, I, T(0), next, C));
  if (lw) TIMED(kLora, lora_forward(next, C, lora_u(l, kGroupDown), a.act, N, (*lw)[kGroupDown], r, ls));
  TIMED(kElementwise, add_inplace(next, a.mid, int64_t(N) * C));
}

template <typename T>
void Llama<T>::forward(const int32_t* tokens, const int32_t* starts, int S, const int32_t* targets, T* logp,
                       bool keep, T* last_logits) {
  const int C = c_.hidden, V = c_.vocab;
  if (keep && !trains_base_ && !(lora_ && lora_->trains()))
    throw std::runtime_error("this model has no gradient buffer and no adapter that trains");
  const PrecisionScope precision(precision_);
  ready_for_backward_ = false;
  keep_ = keep;
  S_ = S;
  N_ = starts[S];
  const int N = N_;
  tokens_.assign(tokens, tokens + N);
  starts_.assign(starts, starts + S + 1);
  pos_.resize(N);
  rows_m_.clear();
  targets_m_.clear();
  int max_len = 1;
  for (int s = 0; s < S; ++s) {
    const int L = starts[s + 1] - starts[s];
    if (L < 0) throw std::runtime_error("sequence starts must not decrease");
    max_len = std::max(max_len, L);
    for (int i = 0; i < L; ++i) pos_[starts[s] + i] = i;
  }
  for (int n = 0; n < N; ++n) {
    if (tokens[n] < 0 || tokens[n] >= V) throw std::runtime_error("token id " + std::to_string(tokens[n]) + " outside the vocabulary");
    if (targets[n] >= V) throw std::runtime_error("target id " + std::to_string(targets[n]) + " outside the vocabulary");
    if (targets[n] >= 0) {
      rows_m_.push_back(n);
      targets_m_.push_back(targets[n]);
    }
  }
  M_ = int(rows_m_.size());
  const int M = M_;
  carve(N, M, S);
  ensure_rope(max_len);
  if (lora_) {
    int64_t per_layer = 0;
    for (const LoraGroup<T>& g : lora_->w[0]) per_layer += g.n;
    lora_acts_.resize(size_t((keeps_layers() ? c_.layers : 1) * per_layer * N * lora_->spec.rank));
  }
  TIMED(kEmbedding, embedding_forward(resid(0), tokens_.data(), w_.embed, N, C));
  for (int l = 0; l < c_.layers; ++l) layer_forward(l, true);
  TIMED(kRmsnorm, rmsnorm_forward(a_.xnf, a_.rstdf, resid(c_.layers), w_.final_norm, N, C, c_.rms_eps));

  std::fill(logp, logp + N, T(0));
  for (int m = 0; m < M; ++m) std::memcpy(a_.hm + int64_t(m) * C, a_.xnf + int64_t(rows_m_[m]) * C, sizeof(T) * C);
  if (M > 0) head_forward();
  for (int m = 0; m < M; ++m) logp[rows_m_[m]] = a_.lp[m];

  if (last_logits) {  // after the scored rows, so hm is free again
    for (int s = 0; s < S; ++s) {
      T* out = last_logits + int64_t(s) * V;
      if (starts[s + 1] == starts[s]) {
        std::fill(out, out + V, T(0));
        continue;
      }
      std::memcpy(a_.hm, a_.xnf + int64_t(starts[s + 1] - 1) * C, sizeof(T) * C);
      lm_head_rows(out, a_.hm, 1);
    }
  }
  ready_for_backward_ = keep;
}

template <typename T>
void Llama<T>::backward(const T* dlogp) {
  if (!ready_for_backward_) throw std::runtime_error("backward needs a forward with keep = true just before it");
  const PrecisionScope precision(precision_);
  const int N = N_, M = M_, S = S_;
  const int C = c_.hidden, I = c_.intermediate, QKV = c_.qkv_dim(), QD = c_.q_dim();
  const int H = c_.heads, KV = c_.kv_heads, D = c_.head_dim;
  const bool lora_trains = lora_ && lora_->trains();
  const int r = lora_ ? lora_->spec.rank : 0;
  const T ls = lora_ ? T(lora_->spec.scale) : T(0);
  const int64_t sizes[] = {int64_t(N) * C,     int64_t(N) * C, int64_t(N) * QKV,   int64_t(N) * QD,
                           int64_t(N) * 2 * I, int64_t(N) * I, int64_t(M) * C, int64_t(N) * 3 * r};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (int64_t(grads_scratch_.size()) < total) {
    grads_scratch_.clear();
    grads_scratch_.shrink_to_fit();
    grads_scratch_.resize(size_t(total));
  }
  T* dresid = grads_scratch_.data();
  T* dxn = dresid + sizes[0];
  T* dqkv = dxn + sizes[1];
  T* dattn = dqkv + sizes[2];
  T* dgu = dattn + sizes[3];
  T* dact = dgu + sizes[4];
  T* dh = dact + sizes[5];
  T* du = dh + sizes[6];  // adapter scratch
  const SeqBatch sb{starts_.data(), S};

  // Head: d logits = dlogp (onehot - softmax), recomputing the logits chunk by chunk.
  TIMED(kElementwise, std::fill(dxn, dxn + int64_t(N) * C, T(0)));
  for (int m = 0; m < M; ++m) a_.lp[m] = dlogp[rows_m_[m]];
  if (M > 0) head_backward(dh);
  for (int m = 0; m < M; ++m) std::memcpy(dxn + int64_t(rows_m_[m]) * C, dh + int64_t(m) * C, sizeof(T) * C);
  TIMED(kElementwise, std::fill(dresid, dresid + int64_t(N) * C, T(0)));
  TIMED(kRmsnorm, rmsnorm_backward(dresid, trains_base_ ? g_.final_norm : nullptr, dxn, resid(c_.layers),
                                   w_.final_norm, a_.rstdf, N, C));

  for (int l = c_.layers - 1; l >= 0; --l) {
    const LayerWeights<T>& w = w_.layers[l];
    const LayerWeights<T>& g = g_.layers[l];
    // Frozen weights get no gradient; layer 0's input gradient only feeds the embedding's.
    const bool base = trains_base_, need_dx = trains_base_ || l > 0;
    const LoraLayer<T>* lw = lora_ ? &lora_->w[size_t(l)] : nullptr;
    const LoraLayer<T>* lg = lora_trains ? &lora_->g[size_t(l)] : nullptr;
    auto lora_grad = [lg](int group) { return lg ? &(*lg)[size_t(group)] : nullptr; };
    if (recompute_) layer_forward(l, false);
    const LayerActs a = layer_acts(l);
    const T *xn1 = a.xn1, *qkv = a.qkv, *att_lse = a.att_lse, *attn = a.attn, *mid = a.mid, *xn2 = a.xn2,
            *gu = a.gu, *act = a.act;
    // MLP: resid[l+1] = mid + down(swiglu(gate_up(rmsnorm(mid))))
    TIMED(kMatmul, gemm<T>(false, false, N, I, C, T(1), dresid, C, w.wdown, I, T(0), dact, I));
    if (base) TIMED(kMatmul, gemm<T>(true, false, C, I, N, T(1), dresid, C, act, I, T(1), g.wdown, I));
    if (lw) TIMED(kLora, lora_backward(dact, lora_grad(kGroupDown), du, dresid, C, act, lora_u(l, kGroupDown), N,
                                       (*lw)[kGroupDown], r, ls));
    TIMED(kElementwise, std::fill(dgu, dgu + int64_t(N) * 2 * I, T(0)));
    TIMED(kSwiglu, swiglu_backward(dgu, dact, gu, N, I));
    TIMED(kMatmul, gemm<T>(false, false, N, C, 2 * I, T(1), dgu, 2 * I, w.wgate_up, C, T(0), dxn, C));
    if (base) TIMED(kMatmul, gemm<T>(true, false, 2 * I, C, N, T(1), dgu, 2 * I, xn2, C, T(1), g.wgate_up, C));
    if (lw) TIMED(kLora, lora_backward(dxn, lora_grad(kGroupGateUp), du, dgu, 2 * I, xn2, lora_u(l, kGroupGateUp), N,
                                       (*lw)[kGroupGateUp], r, ls));
    TIMED(kRmsnorm, rmsnorm_backward(dresid, base ? g.mlp_norm : nullptr, dxn, mid, w.mlp_norm,
                                     a.rstd2, N, C));
    // Attention: mid = resid[l] + o_proj(attention(rope(qkv(rmsnorm(resid[l])))))
    if (base && g.bo) TIMED(kElementwise, bias_backward(g.bo, dresid, N, C));
    TIMED(kMatmul, gemm<T>(false, false, N, QD, C, T(1), dresid, C, w.wo, QD, T(0), dattn, QD));
    if (base) TIMED(kMatmul, gemm<T>(true, false, C, QD, N, T(1), dresid, C, attn, QD, T(1), g.wo, QD));
    if (lw) TIMED(kLora, lora_backward(dattn, lora_grad(kGroupO), du, dresid, C, attn, lora_u(l, kGroupO), N,
                                       (*lw)[kGroupO], r, ls));
    TIMED(kElementwise, std::fill(dqkv, dqkv + int64_t(N) * QKV, T(0)));
    TIMED(kAttention, attention_backward(dqkv, dattn, qkv, att_lse, sb, H, KV, D, c_.sliding_window));
    TIMED(kRope, rope_apply(dqkv, N, QKV, 0, H, D, pos_.data(), cos_.data(), sin_.data(), true));
    TIMED(kRope, rope_apply(dqkv, N, QKV, QD, KV, D, pos_.data(), cos_.data(), sin_.data(), true));
    if (base && g.bqkv) TIMED(kElementwise, bias_backward(g.bqkv, dqkv, N, QKV));
    if (need_dx) TIMED(kMatmul, gemm<T>(false, false, N, C, QKV, T(1), dqkv, QKV, w.wqkv, C, T(0), dxn, C));
    if (base) TIMED(kMatmul, gemm<T>(true, false, QKV, C, N, T(1), dqkv, QKV, xn1, C, T(1), g.wqkv, C));
    if (lw) TIMED(kLora, lora_backward(need_dx ? dxn : nullptr, lora_grad(kGroupQkv), du, dqkv, QKV, xn1,
                                       lora_u(l, kGroupQkv), N, (*lw)[kGroupQkv], r, ls));
    if (need_dx)
      TIMED(kRmsnorm, rmsnorm_backward(dresid, base ? g.attn_norm : nullptr, dxn, resid(l), w.attn_norm,
                                       a.rstd1, N, C));
  }
  if (trains_base_) TIMED(kEmbedding, embedding_backward(g_.embed, dresid, tokens_.data(), N, C, c_.pad_token));
}

template class Llama<float>;
template class Llama<double>;

}  // namespace dno
