// Forward and backward kernels of the Llama-family decoder over flat row-major buffers, llm.c style:
// xxx_forward(out, ..., inp, ...) and xxx_backward(dinp, dweight, ..., dout, ...), shapes in comments.
// Backward kernels ACCUMULATE (+=) into every gradient they produce.
// Templates over T: float is the engine, double is the finite-difference test path.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "gemm_bf16.h"
#include "rowops.h"
#include "threadpool.h"

namespace dno {

// Rows per parallel_for chunk so that each chunk does at least ~32k multiply-adds.
inline int64_t row_grain(int64_t work_per_row) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
}

// C (M,N) = alpha op(A) op(B) + beta C, row-major, the contract of sgemm (gemm.h) for any T.
template <typename T>
void gemm(bool transA, bool transB, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc);

// float32 products, or bf16 inputs with float32 accumulation inside a PrecisionScope(kBf16) (gemm_bf16.h).
template <>
inline void gemm<float>(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                        const float* B, int ldb, float beta, float* C, int ldc) {
  if (gemm_precision() == Precision::kBf16) return bgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// The double path exists for tests: plain loops with a double accumulator.
template <>
inline void gemm<double>(bool transA, bool transB, int M, int N, int K, double alpha, const double* A, int lda,
                         const double* B, int ldb, double beta, double* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k)
        s += (transA ? A[int64_t(k) * lda + i] : A[int64_t(i) * lda + k]) *
             (transB ? B[int64_t(j) * ldb + k] : B[int64_t(k) * ldb + j]);
      double& c = C[int64_t(i) * ldc + j];
      c = alpha * s + (beta == 0 ? 0.0 : beta * c);
    }
}

// tokens is (N), table is (V,C), out is (N,C)
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C) {
  parallel_for(N, row_grain(C), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) std::memcpy(out + n * C, table + int64_t(tokens[n]) * C, sizeof(T) * C);
  });
}

// Rows of pad_token (if >= 0) get no gradient, as HF's padding_idx.
template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int N, int C, int pad_token) {
  // Parallel over columns: two rows may share a token.
  parallel_for(C, std::max<int64_t>(16, row_grain(N)), [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; ++n) {
      if (tokens[n] == pad_token) continue;
      T* d = dtable + int64_t(tokens[n]) * C;
      const T* g = dout + int64_t(n) * C;
      for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

// inp is (N,C), weight (C), out (N,C), rstd (N): out = weight * inp / sqrt(mean(inp^2) + eps)
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int N, int C, double eps) {
  parallel_for(N, row_grain(C), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) return rows::rmsnorm_forward(out, rstd, inp, weight, b, e, C, float(eps));
    for (int64_t n = b; n < e; ++n) {
      const T* x = inp + n * C;
      T* y = out + n * C;
      T ss = 0;
      for (int c = 0; c < C; ++c) ss += x[c] * x[c];
      const T r = T(1) / std::sqrt(ss / T(C) + T(eps));
      rstd[n] = r;
      for (int c = 0; c < C; ++c) y[c] = weight[c] * (x[c] * r);
    }
  });
}

// dinp += d/dinp, dweight += d/dweight (unless null), given dout (N,C) and the forward's inp and rstd.
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, int N,
                      int C) {
  parallel_for(N, row_grain(C), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) return rows::rmsnorm_backward(dinp, dout, inp, weight, rstd, b, e, C);
    for (int64_t n = b; n < e; ++n) {
      const T* x = inp + n * C;
      const T* g = dout + n * C;
      T* dx = dinp + n * C;
      const T r = rstd[n];
      T dot = 0;  // sum_c g_c w_c x_c
      for (int c = 0; c < C; ++c) dot += g[c] * weight[c] * x[c];
      const T k = dot * r * r * r / T(C);
      for (int c = 0; c < C; ++c) dx[c] += g[c] * weight[c] * r - k * x[c];
    }
  });
  if (!dweight) return;  // a frozen weight
  // dweight reduces over rows: parallel over columns.
  parallel_for(C, std::max<int64_t>(16, row_grain(N)), [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; ++n) {
      const T* x = inp + int64_t(n) * C;
      const T* g = dout + int64_t(n) * C;
      const T r = rstd[n];
      for (int64_t c = c0; c < c1; ++c) dweight[c] += g[c] * x[c] * r;
    }
  });
}

// RoPE, HF rotate-half: the head vector x (D) splits into halves x1, x2 and becomes
// (x1 cos - x2 sin, x2 cos + x1 sin) with angle pos * inv_freq[i], i < D/2.
// x is (N, stride); heads [0, nheads) start at column col0, D apart; pos (N); cos, sin are (P, D/2).
// inverse = true applies the transposed rotation: the backward of the forward, in place.
template <typename T>
void rope_apply(T* x, int N, int stride, int col0, int nheads, int D, const int32_t* pos, const T* cos,
                const T* sin, bool inverse) {
  const int half = D / 2;
  parallel_for(N, row_grain(int64_t(nheads) * D), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) return rows::rope_apply(x, b, e, stride, col0, nheads, D, pos, cos, sin, inverse);
    for (int64_t n = b; n < e; ++n) {
      const T* cs = cos + int64_t(pos[n]) * half;
      const T* sn = sin + int64_t(pos[n]) * half;
      for (int h = 0; h < nheads; ++h) {
        T* v = x + n * stride + col0 + int64_t(h) * D;
        for (int i = 0; i < half; ++i) {
          const T a = v[i], b2 = v[i + half], s = inverse ? -sn[i] : sn[i];
          v[i] = a * cs[i] - b2 * s;
          v[i + half] = b2 * cs[i] + a * s;
        }
      }
    }
  });
}

// Packed variable-length sequences: sequence s is rows [starts[s], starts[s+1]) of every (N, ...) buffer,
// at positions 0, 1, ...; attention never crosses sequences (the padding mask of a packed batch).
struct SeqBatch {
  const int32_t* starts;  // (S+1)
  int S;
};

// One (L, L) matrix per pool thread: attention probabilities live only while one head is processed.
template <typename T>
T* attention_scratch(size_t n) {
  thread_local std::vector<T> scratch;
  if (scratch.size() < n) scratch.resize(n);
  return scratch.data();
}

// Attention works through each sequence in blocks of query rows: a block's rows see keys [k0, i1) only
// (those before k0 are outside every row's window, from i1 on in the future), so the causal half of the
// products is skipped.
constexpr int kAttentionRowBlock = 64;

struct QueryBlock {
  int i0, i1, k0;  // rows [i0, i1), keys [k0, i1)
};

inline QueryBlock query_block(int i0, int L, int window, int row_block) {
  const int i1 = std::min(L, i0 + row_block);
  return {i0, i1, window > 0 ? std::max(0, i0 - window + 1) : 0};
}

// Causal attention with grouped KV heads and an optional sliding window.
// qkv is (N, H*D + 2*KV*D): q heads, then k heads, then v heads (RoPE already applied);
// out is (N, H*D); lse (N, H) receives each softmax row's log-sum-exp, from which the backward
// recomputes the probabilities (so no (L, L) matrix outlives its head).
// Its products stay float32 in mixed precision too (as in sampling; a small share of the FLOPs).
// row_block: query rows per block (tests make it small to cross blocks in short sequences).
template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, const SeqBatch& sb, int H, int KV, int D, int window,
                       int row_block = kAttentionRowBlock) {
  const PrecisionScope fp32(Precision::kFp32);
  const int QKV = (H + 2 * KV) * D, rep = H / KV;
  const T scale = T(1) / std::sqrt(T(D));
  parallel_for(int64_t(sb.S) * H, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int s = int(task / H), h = int(task % H), g = h / rep;
      const int r0 = sb.starts[s], L = sb.starts[s + 1] - r0;
      if (L == 0) continue;
      const T* q = qkv + int64_t(r0) * QKV + int64_t(h) * D;
      const T* k = qkv + int64_t(r0) * QKV + int64_t(H + g) * D;
      const T* v = qkv + int64_t(r0) * QKV + int64_t(H + KV + g) * D;
      T* p = attention_scratch<T>(size_t(L) * L);
      for (int i0 = 0; i0 < L; i0 += row_block) {
        const QueryBlock qb = query_block(i0, L, window, row_block);
        const int rows = qb.i1 - qb.i0, keys = qb.i1 - qb.k0;
        T* pb = p + int64_t(qb.i0) * L + qb.k0;
        gemm<T>(false, true, rows, keys, D, scale, q + int64_t(qb.i0) * QKV, QKV, k + int64_t(qb.k0) * QKV, QKV, T(0),
                pb, L);
        for (int i = qb.i0; i < qb.i1; ++i) {
          T* row = p + int64_t(i) * L;
          const int j0 = window > 0 ? std::max(0, i - window + 1) : 0;
          T* l = lse + int64_t(r0 + i) * H + h;
          if constexpr (std::is_same_v<T, float>) {
            *l = rows::softmax_causal(row, j0, i, L);
            continue;
          }
          T mx = row[j0];
          for (int j = j0 + 1; j <= i; ++j) mx = std::max(mx, row[j]);
          T sum = 0;
          for (int j = j0; j <= i; ++j) sum += (row[j] = std::exp(row[j] - mx));
          const T inv = T(1) / sum;
          for (int j = 0; j < j0; ++j) row[j] = 0;
          for (int j = j0; j <= i; ++j) row[j] *= inv;
          for (int j = i + 1; j < L; ++j) row[j] = 0;
          *l = mx + std::log(sum);
        }
        gemm<T>(false, false, rows, D, keys, T(1), pb, L, v + int64_t(qb.k0) * QKV, QKV, T(0),
                out + int64_t(r0 + qb.i0) * H * D + int64_t(h) * D, H * D);
      }
    }
  });
}

// dqkv (N, H*D + 2*KV*D) += gradients wrt the post-RoPE q, k, v; dout is (N, H*D); lse, window and
// row_block as the forward gave and took them.
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* lse, const SeqBatch& sb, int H, int KV,
                        int D, int window, int row_block = kAttentionRowBlock) {
  const PrecisionScope fp32(Precision::kFp32);
  const int QKV = (H + 2 * KV) * D, rep = H / KV;
  const T scale = T(1) / std::sqrt(T(D));
  // Parallel over (sequence, kv head): the query heads of one group all add into its dk, dv.
  parallel_for(int64_t(sb.S) * KV, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int s = int(task / KV), g = int(task % KV);
      const int r0 = sb.starts[s], L = sb.starts[s + 1] - r0;
      if (L == 0) continue;
      T* p = attention_scratch<T>(size_t(2) * L * L);
      T* dp = p + int64_t(L) * L;
      const int64_t base = int64_t(r0) * QKV;
      const T* k = qkv + base + int64_t(H + g) * D;
      const T* v = qkv + base + int64_t(H + KV + g) * D;
      T* dk = dqkv + base + int64_t(H + g) * D;
      T* dv = dqkv + base + int64_t(H + KV + g) * D;
      for (int h = g * rep; h < (g + 1) * rep; ++h) {
        const T* q = qkv + base + int64_t(h) * D;
        T* dq = dqkv + base + int64_t(h) * D;
        const T* dO = dout + int64_t(r0) * H * D + int64_t(h) * D;
        for (int i0 = 0; i0 < L; i0 += row_block) {
          const QueryBlock qb = query_block(i0, L, window, row_block);
          const int rows = qb.i1 - qb.i0, keys = qb.i1 - qb.k0;
          T* pb = p + int64_t(qb.i0) * L + qb.k0;
          T* dpb = dp + int64_t(qb.i0) * L + qb.k0;
          const T* qi = q + int64_t(qb.i0) * QKV;
          const T* dOi = dO + int64_t(qb.i0) * H * D;
          gemm<T>(false, true, rows, keys, D, scale, qi, QKV, k + int64_t(qb.k0) * QKV, QKV, T(0), pb, L);  // P again
          for (int i = qb.i0; i < qb.i1; ++i) {  // from the scores and lse
            T* row = p + int64_t(i) * L;
            const int j0 = window > 0 ? std::max(0, i - window + 1) : 0;
            const T l = lse[int64_t(r0 + i) * H + h];
            if constexpr (std::is_same_v<T, float>) {
              rows::softmax_recompute(row, j0, i, L, l);
              continue;
            }
            for (int j = 0; j < L; ++j) row[j] = j >= j0 && j <= i ? std::exp(row[j] - l) : T(0);
          }
          gemm<T>(true, false, keys, D, rows, T(1), pb, L, dOi, H * D, T(1), dv + int64_t(qb.k0) * QKV, QKV);  // dv += P^T dO
          gemm<T>(false, true, rows, keys, D, T(1), dOi, H * D, v + int64_t(qb.k0) * QKV, QKV, T(0), dpb, L);  // dP = dO V^T
          for (int i = qb.i0; i < qb.i1; ++i) {  // dS = P * (dP - rowsum(P * dP)), times the score scale
            const T* pr = p + int64_t(i) * L;
            T* dr = dp + int64_t(i) * L;
            if constexpr (std::is_same_v<T, float>) {
              rows::softmax_backward_causal(dr, pr, qb.k0, i, L, scale);  // p is 0 in [k0, j0): exact
              continue;
            }
            T dot = 0;
            for (int j = qb.k0; j <= i; ++j) dot += pr[j] * dr[j];
            for (int j = 0; j < qb.k0; ++j) dr[j] = 0;
            for (int j = qb.k0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot) * scale;
            for (int j = i + 1; j < L; ++j) dr[j] = 0;
          }
          gemm<T>(false, false, rows, D, keys, T(1), dpb, L, k + int64_t(qb.k0) * QKV, QKV, T(1), dq + int64_t(qb.i0) * QKV,
                  QKV);  // dq += dS K
          gemm<T>(true, false, keys, D, rows, T(1), dpb, L, qi, QKV, T(1), dk + int64_t(qb.k0) * QKV, QKV);  // dk += dS^T Q
        }
      }
    }
  });
}

// gate_up is (N, 2I) = [gate | up]; out (N, I) = silu(gate) * up
template <typename T>
void swiglu_forward(T* out, const T* gate_up, int N, int I) {
  parallel_for(N, row_grain(I), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) return rows::swiglu_forward(out, gate_up, b, e, I);
    for (int64_t n = b; n < e; ++n) {
      const T* gt = gate_up + n * 2 * I;
      const T* up = gt + I;
      T* o = out + n * I;
      for (int i = 0; i < I; ++i) o[i] = gt[i] / (T(1) + std::exp(-gt[i])) * up[i];
    }
  });
}

// dgate_up (N, 2I) += gradients given dout (N, I)
template <typename T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int N, int I) {
  parallel_for(N, row_grain(I), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) return rows::swiglu_backward(dgate_up, dout, gate_up, b, e, I);
    for (int64_t n = b; n < e; ++n) {
      const T* gt = gate_up + n * 2 * I;
      const T* up = gt + I;
      const T* g = dout + n * I;
      T* dgt = dgate_up + n * 2 * I;
      T* dup = dgt + I;
      for (int i = 0; i < I; ++i) {
        const T sig = T(1) / (T(1) + std::exp(-gt[i]));
        const T silu = gt[i] * sig;
        dup[i] += g[i] * silu;
        dgt[i] += g[i] * up[i] * sig * (T(1) + gt[i] * (T(1) - sig));
      }
    }
  });
}

// out (N, W) += bias (W) on every row
template <typename T>
void bias_forward(T* out, const T* bias, int N, int W) {
  parallel_for(N, row_grain(W), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      for (int w = 0; w < W; ++w) out[n * W + w] += bias[w];
  });
}

// dbias (W) += column sums of dout (N, W)
template <typename T>
void bias_backward(T* dbias, const T* dout, int N, int W) {
  parallel_for(W, std::max<int64_t>(16, row_grain(N)), [&](int64_t w0, int64_t w1) {
    for (int n = 0; n < N; ++n)
      for (int64_t w = w0; w < w1; ++w) dbias[w] += dout[int64_t(n) * W + w];
  });
}

// The log-softmax of rows over a vocabulary too large for one (rows, V) buffer, one chunk of columns
// [v0, v0 + Vc) at a time; logits (M, Vc) is the chunk, targets (M) index the whole vocabulary.
// Forward: lse (M) accumulates the log-sum-exp over the chunks so far (v0 = 0 starts it), tlogit (M) gets
// the target's logit from the chunk holding it; after the last chunk, log p(target) = tlogit - lse.
template <typename T>
void logsoftmax_chunk_forward(T* lse, T* tlogit, const T* logits, const int32_t* targets, int M, int v0, int Vc) {
  parallel_for(M, row_grain(Vc), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>)
      return rows::logsoftmax_chunk_forward(lse, tlogit, logits, targets, b, e, v0, Vc);
    for (int64_t m = b; m < e; ++m) {
      const T* z = logits + m * Vc;
      T mx = z[0];
      for (int i = 1; i < Vc; ++i) mx = std::max(mx, z[i]);
      T sum = 0;
      for (int i = 0; i < Vc; ++i) sum += std::exp(z[i] - mx);
      const T l = mx + std::log(sum);
      lse[m] = v0 == 0 ? l : std::max(lse[m], l) + std::log1p(std::exp(-std::abs(lse[m] - l)));
      const int t = targets[m] - v0;
      if (t >= 0 && t < Vc) tlogit[m] = z[t];
    }
  });
}

// In place: the chunk's logits (M, Vc) become d/dlogits of sum_m dlogp[m] * log p(target m)
// = dlogp (onehot(target) - softmax), given the full lse from the forward.
template <typename T>
void logsoftmax_chunk_backward(T* logits, const T* dlogp, const T* lse, const int32_t* targets, int M, int v0, int Vc) {
  parallel_for(M, row_grain(Vc), [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>)
      return rows::logsoftmax_chunk_backward(logits, dlogp, lse, targets, b, e, v0, Vc);
    for (int64_t m = b; m < e; ++m) {
      T* z = logits + m * Vc;
      const T g = dlogp[m], l = lse[m];
      for (int i = 0; i < Vc; ++i) z[i] = -g * std::exp(z[i] - l);
      const int t = targets[m] - v0;
      if (t >= 0 && t < Vc) z[t] += g;
    }
  });
}

// out (N, W) += inp (N, W)
template <typename T>
void add_inplace(T* out, const T* inp, int64_t n) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] += inp[i];
  });
}

// AdamW (Loshchilov & Hutter), as torch.optim.AdamW: p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps),
// with bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. Updates n elements of p, m, v in place.
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, double bc1, double bc2);

// sum of squares in double (global grad-norm clipping)
double sum_squares(const float* x, int64_t n);

// x *= s
void scale_inplace(float* x, int64_t n, float s);

}  // namespace dno
