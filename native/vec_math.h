// Elementwise float loops of the kernels that call exp: compiled for AVX-512, AVX2 and baseline x86-64
// and picked when the addon loads (GCC target_clones), with an exp that vectorises (libm's expf is one
// call per element): within 1 ulp of expf on [-87.3, 88.3], and beyond it the values at those ends
// (2^-126 and 2e38; softmax and sigmoid need no more). The double overloads are plain loops on std::exp,
// for the finite-difference path.
#pragma once

#include <cmath>

namespace dno {

// x[i] = exp(x[i] - shift), i < n
void exp_shifted(float* x, int n, float shift);
// out[i] = silu(gate[i]) * up[i], silu(g) = g sigmoid(g)
void silu_mul(float* out, const float* gate, const float* up, int n);
// dgate[i] += dout[i] up[i] silu'(gate[i]), dup[i] += dout[i] silu(gate[i])
void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int n);

inline void exp_shifted(double* x, int n, double shift) {
  for (int i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}

inline void silu_mul(double* out, const double* gate, const double* up, int n) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
}

inline void silu_mul_backward(double* dgate, double* dup, const double* dout, const double* gate,
                              const double* up, int n) {
  for (int i = 0; i < n; ++i) {
    const double sig = 1.0 / (1.0 + std::exp(-gate[i]));
    dup[i] += dout[i] * (gate[i] * sig);
    dgate[i] += dout[i] * up[i] * sig * (1.0 + gate[i] * (1.0 - sig));
  }
}

}  // namespace dno
