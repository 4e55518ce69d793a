// Float32 row kernels behind the decoder's elementwise work (exp-heavy SwiGLU and softmax, RMSNorm
// reductions), compiled three times (AVX-512, AVX2+FMA, baseline) and picked at run time, as the addon
// is built without -march flags. Each works on rows [n0, n1) so parallel_for can split them.
#pragma once
#include <cstdint>

namespace dno::rows {

// gate_up (N, 2I) = [gate | up] -> out (N, I) = silu(gate) * up
void swiglu_forward(float* out, const float* gate_up, int64_t n0, int64_t n1, int I);
// dgate_up (N, 2I) += gradients given dout (N, I)
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int64_t n0, int64_t n1, int I);
// out = weight * inp * rstd per row of (N, C); rstd (N)
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t n0, int64_t n1, int C,
                     float eps);
// dinp += rmsnorm backward per row (dweight is reduced separately)
void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* weight, const float* rstd,
                      int64_t n0, int64_t n1, int C);
// row[j0..i] = softmax(row[j0..i]); the rest of row[0..L) = 0; returns log(sum(exp(row[j0..i])))
float softmax_causal(float* row, int j0, int i, int L);
// row[j0..i] = exp(row[j0..i] - lse) (softmax recomputed from its log-sum-exp); the rest of row[0..L) = 0
void softmax_recompute(float* row, int j0, int i, int L, float lse);
// dS row: d[j] = p[j] * (d[j] - sum_k p[k] d[k]) * scale for j in [j0, i]; 0 elsewhere in [0, L)
void softmax_backward_causal(float* d, const float* p, int j0, int i, int L, float scale);

// One chunk of the vocabulary, columns [v0, v0 + Vc), of each row's log-softmax; logits (M, Vc).
// lse[m] = logsumexp of the chunk's row when v0 = 0, else log(exp(lse[m]) + exp(that)): over the chunks so
// far. tlogit[m] = the row's logit of targets[m] where that falls in the chunk (untouched elsewhere).
void logsoftmax_chunk_forward(float* lse, float* tlogit, const float* logits, const int32_t* targets, int64_t m0,
                              int64_t m1, int v0, int Vc);
// in place: logits row m becomes dlogp[m] * (onehot(targets[m] - v0) - exp(row - lse[m])), lse over all V
void logsoftmax_chunk_backward(float* logits, const float* dlogp, const float* lse, const int32_t* targets,
                               int64_t m0, int64_t m1, int v0, int Vc);
// RoPE rotate-half on heads [0, nheads) of rows [n0, n1) of x (N, stride) from column col0; see kernels.h
void rope_apply(float* x, int64_t n0, int64_t n1, int stride, int col0, int nheads, int D, const int32_t* pos,
                const float* cos, const float* sin, bool inverse);

}  // namespace dno::rows
