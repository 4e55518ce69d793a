#include "rowops.h"

#include <cmath>

namespace dno::rows {
namespace {

#define DNO_INLINE __attribute__((always_inline)) inline

// e^x for x in about [-87, 88], relative error ~2e-7, branch-free so loops over it vectorize:
// x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent bits.
DNO_INLINE float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.3888889e-3f;
  p = p * r + 8.3333333e-3f;
  p = p * r + 4.1666667e-2f;
  p = p * r + 1.6666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
}

// Sums with 16 independent accumulators, so the compiler vectorizes without reassociating.
template <typename F>
DNO_INLINE float sum16(int n0, int n1, F term) {
  float acc[16] = {};
  int j = n0;
  for (; j + 16 <= n1; j += 16)
    for (int k = 0; k < 16; ++k) acc[k] += term(j + k);
  float s = 0;
  for (; j < n1; ++j) s += term(j);
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s;
}

DNO_INLINE void swiglu_forward_body(float* out, const float* gate_up, int64_t n0, int64_t n1, int I) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    float* __restrict o = out + n * I;
    for (int i = 0; i < I; ++i) o[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
  }
}

DNO_INLINE void swiglu_backward_body(float* dgate_up, const float* dout, const float* gate_up, int64_t n0, int64_t n1,
                                     int I) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* __restrict g = gate_up + n * 2 * I;
    const float* __restrict u = g + I;
    const float* __restrict d = dout + n * I;
    float* __restrict dg = dgate_up + n * 2 * I;
    float* __restrict du = dg + I;
    for (int i = 0; i < I; ++i) {
      const float sig = 1.0f / (1.0f + exp_approx(-g[i]));
      du[i] += d[i] * g[i] * sig;
      dg[i] += d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
  }
}

DNO_INLINE void rmsnorm_forward_body(float* out, float* rstd, const float* inp, const float* weight, int64_t n0,
                                     int64_t n1, int C, float eps) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    const float ss = sum16(0, C, [x](int c) { return x[c] * x[c]; });
    const float r = 1.0f / std::sqrt(ss / float(C) + eps);
    rstd[n] = r;
    for (int c = 0; c < C; ++c) y[c] = weight[c] * (x[c] * r);
  }
}

DNO_INLINE void rmsnorm_backward_body(float* dinp, const float* dout, const float* inp, const float* weight,
                                      const float* rstd, int64_t n0, int64_t n1, int C) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;
    const float* g = dout + n * C;
    float* dx = dinp + n * C;
    const float r = rstd[n];
    const float dot = sum16(0, C, [g, weight, x](int c) { return g[c] * weight[c] * x[c]; });
    const float k = dot * r * r * r / float(C);
    for (int c = 0; c < C; ++c) dx[c] += g[c] * weight[c] * r - k * x[c];
  }
}

DNO_INLINE float softmax_causal_body(float* row, int j0, int i, int L) {
  float mx = row[j0];
  for (int j = j0 + 1; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
  for (int j = j0; j <= i; ++j) row[j] = exp_approx(row[j] - mx);
  const float sum = sum16(j0, i + 1, [row](int j) { return row[j]; });
  const float inv = 1.0f / sum;
  for (int j = 0; j < j0; ++j) row[j] = 0;
  for (int j = j0; j <= i; ++j) row[j] *= inv;
  for (int j = i + 1; j < L; ++j) row[j] = 0;
  return mx + std::log(sum);
}

DNO_INLINE void softmax_recompute_body(float* row, int j0, int i, int L, float lse) {
  for (int j = 0; j < j0; ++j) row[j] = 0;
  for (int j = j0; j <= i; ++j) row[j] = exp_approx(row[j] - lse);
  for (int j = i + 1; j < L; ++j) row[j] = 0;
}

DNO_INLINE void softmax_backward_causal_body(float* d, const float* p, int j0, int i, int L, float scale) {
  const float dot = sum16(j0, i + 1, [d, p](int j) { return p[j] * d[j]; });
  for (int j = 0; j < j0; ++j) d[j] = 0;
  for (int j = j0; j <= i; ++j) d[j] = p[j] * (d[j] - dot) * scale;
  for (int j = i + 1; j < L; ++j) d[j] = 0;
}

DNO_INLINE void logsoftmax_chunk_forward_body(float* lse, float* tlogit, const float* logits, const int32_t* targets,
                                             int64_t m0, int64_t m1, int v0, int Vc) {
  for (int64_t m = m0; m < m1; ++m) {
    const float* __restrict z = logits + m * Vc;
    float mx = z[0];
    for (int i = 1; i < Vc; ++i) mx = z[i] > mx ? z[i] : mx;
    const float l = mx + std::log(sum16(0, Vc, [z, mx](int i) { return exp_approx(z[i] - mx); }));
    if (v0 == 0) {
      lse[m] = l;
    } else {  // log(e^a + e^b) without overflow
      const float hi = lse[m] > l ? lse[m] : l, lo = lse[m] > l ? l : lse[m];
      lse[m] = hi + std::log1p(std::exp(lo - hi));
    }
    const int t = targets[m] - v0;
    if (t >= 0 && t < Vc) tlogit[m] = z[t];
  }
}

DNO_INLINE void logsoftmax_chunk_backward_body(float* logits, const float* dlogp, const float* lse,
                                              const int32_t* targets, int64_t m0, int64_t m1, int v0, int Vc) {
  for (int64_t m = m0; m < m1; ++m) {
    float* __restrict z = logits + m * Vc;
    const float g = dlogp[m], l = lse[m];
    for (int i = 0; i < Vc; ++i) z[i] = -g * exp_approx(z[i] - l);
    const int t = targets[m] - v0;
    if (t >= 0 && t < Vc) z[t] += g;
  }
}

DNO_INLINE void rope_apply_body(float* x, int64_t n0, int64_t n1, int stride, int col0, int nheads, int D,
                                const int32_t* pos, const float* cos, const float* sin, bool inverse) {
  const int half = D / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  for (int64_t n = n0; n < n1; ++n) {
    const float* __restrict cs = cos + int64_t(pos[n]) * half;
    const float* __restrict sn = sin + int64_t(pos[n]) * half;
    for (int h = 0; h < nheads; ++h) {
      float* __restrict a = x + n * stride + col0 + int64_t(h) * D;
      float* __restrict b = a + half;
      for (int i = 0; i < half; ++i) {
        const float ai = a[i], bi = b[i], s = sign * sn[i];
        a[i] = ai * cs[i] - bi * s;
        b[i] = bi * cs[i] + ai * s;
      }
    }
  }
}

enum Level { kBase, kAvx2, kAvx512 };

#if defined(__x86_64__) || defined(__i386__)
Level cpu_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
  return kBase;
}
#define DNO_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define DNO_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
Level cpu_level() { return kBase; }
#define DNO_TARGET_AVX512
#define DNO_TARGET_AVX2
#endif

const Level g_level = cpu_level();

}  // namespace

// One definition per ISA, the same body inlined into each, and a dispatcher.
#define DNO_ROW_KERNEL(name, params, args)                                                                 \
  namespace {                                                                                              \
  DNO_TARGET_AVX512 void name##_avx512 params {                                                          \
    name##_body args;                                                                                      \
  }                                                                                                        \
  DNO_TARGET_AVX2 void name##_avx2 params { name##_body args; }                                          \
  void name##_base params { name##_body args; }                                                            \
  }                                                                                                        \
  void name params {                                                                                       \
    if (g_level == kAvx512) return name##_avx512 args;                                                     \
    if (g_level == kAvx2) return name##_avx2 args;                                                         \
    return name##_base args;                                                                               \
  }

DNO_ROW_KERNEL(swiglu_forward, (float* out, const float* gate_up, int64_t n0, int64_t n1, int I),
               (out, gate_up, n0, n1, I))
DNO_ROW_KERNEL(swiglu_backward,
               (float* dgate_up, const float* dout, const float* gate_up, int64_t n0, int64_t n1, int I),
               (dgate_up, dout, gate_up, n0, n1, I))
DNO_ROW_KERNEL(rmsnorm_forward,
               (float* out, float* rstd, const float* inp, const float* weight, int64_t n0, int64_t n1, int C,
                float eps),
               (out, rstd, inp, weight, n0, n1, C, eps))
DNO_ROW_KERNEL(rmsnorm_backward,
               (float* dinp, const float* dout, const float* inp, const float* weight, const float* rstd,
                int64_t n0, int64_t n1, int C),
               (dinp, dout, inp, weight, rstd, n0, n1, C))
DNO_ROW_KERNEL(logsoftmax_chunk_forward,
               (float* lse, float* tlogit, const float* logits, const int32_t* targets, int64_t m0, int64_t m1, int v0,
                int Vc),
               (lse, tlogit, logits, targets, m0, m1, v0, Vc))
DNO_ROW_KERNEL(logsoftmax_chunk_backward,
               (float* logits, const float* dlogp, const float* lse, const int32_t* targets, int64_t m0, int64_t m1,
                int v0, int Vc),
               (logits, dlogp, lse, targets, m0, m1, v0, Vc))
DNO_ROW_KERNEL(rope_apply,
               (float* x, int64_t n0, int64_t n1, int stride, int col0, int nheads, int D, const int32_t* pos,
                const float* cos, const float* sin, bool inverse),
               (x, n0, n1, stride, col0, nheads, D, pos, cos, sin, inverse))
DNO_ROW_KERNEL(softmax_recompute, (float* row, int j0, int i, int L, float lse), (row, j0, i, L, lse))
namespace {
DNO_TARGET_AVX512 float softmax_causal_avx512(float* row, int j0, int i, int L) {
  return softmax_causal_body(row, j0, i, L);
}
DNO_TARGET_AVX2 float softmax_causal_avx2(float* row, int j0, int i, int L) { return softmax_causal_body(row, j0, i, L); }
float softmax_causal_base(float* row, int j0, int i, int L) { return softmax_causal_body(row, j0, i, L); }
}  // namespace
float softmax_causal(float* row, int j0, int i, int L) {
  if (g_level == kAvx512) return softmax_causal_avx512(row, j0, i, L);
  if (g_level == kAvx2) return softmax_causal_avx2(row, j0, i, L);
  return softmax_causal_base(row, j0, i, L);
}
DNO_ROW_KERNEL(softmax_backward_causal, (float* d, const float* p, int j0, int i, int L, float scale),
               (d, p, j0, i, L, scale))

}  // namespace dno::rows
