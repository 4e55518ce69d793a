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
// row[j0..i] = softmax(row[j0..i]); the rest of row[0..L) = 0
void softmax_causal(float* row, int j0, int i, int L);
// dS row: d[j] = p[j] * (d[j] - sum_k p[k] d[k]) * scale for j in [j0, i]; 0 elsewhere in [0, L)
void softmax_backward_causal(float* d, const float* p, int j0, int i, int L, float scale);

}  // namespace dno::rows
