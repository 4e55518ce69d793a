#include "vec_math.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DNO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DNO_CLONES
#endif

namespace dno {
namespace {

// x = n ln2 + r (Cody-Waite, |r| <= ln2/2), Cephes' degree-6 polynomial for e^r, 2^n through the exponent
// bits. NaN stays NaN. The clamps vectorise as min/max only under -fno-trapping-math (binding.gyp).
inline float exp_inline(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + magic) - magic;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace

DNO_CLONES void exp_shifted(float* x, int n, float shift) {
  for (int i = 0; i < n; ++i) x[i] = exp_inline(x[i] - shift);
}

DNO_CLONES void silu_mul(float* out, const float* gate, const float* up, int n) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + exp_inline(-gate[i])) * up[i];
}

DNO_CLONES void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                  int n) {
  for (int i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + exp_inline(-gate[i]));
    dup[i] += dout[i] * (gate[i] * sig);
    dgate[i] += dout[i] * up[i] * sig * (1.0f + gate[i] * (1.0f - sig));
  }
}

}  // namespace dno
