// bfloat16: the top 16 bits of an IEEE float32, kept as raw bits.
#pragma once
#include <cstdint>
#include <cstring>

namespace dno {

using bf16 = uint16_t;

// Round to nearest, ties to even (as VCVTNEPS2BF16 and PyTorch's bf16 casts); NaN stays NaN.
inline bf16 float_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16(u >> 16);
}

inline float bf16_to_float(bf16 h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// out[i] = float_to_bf16(x[i]) for i < n, on the thread pool.
void to_bf16(const float* x, bf16* out, int64_t n);

}  // namespace dno
