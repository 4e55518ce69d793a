// Packing of GEMM operands into k-major slivers (private to gemm.cpp): out[k * W + j] for k < kc and
// j < W, zero past the `count` real columns, so that the microkernel reads W values per k contiguously.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace dno::gemm {

using PackTransposed = void (*)(const float* src, int64_t ld, int count, int kc, int W, float* out);

// The sliver's columns are rows of src (src[j * ld + k]): out[k * W + j] = src[j * ld + k]. Plain C++.
inline void pack_transposed_portable(const float* src, int64_t ld, int count, int kc, int W, float* out) {
  for (int j = 0; j < count; ++j)
    for (int k = 0; k < kc; ++k) out[k * W + j] = src[j * ld + k];
  for (int k = 0; k < kc; ++k)
    for (int j = count; j < W; ++j) out[k * W + j] = 0.0f;
}

// The sliver's columns are contiguous in src (src[k * ld + j]): out[k * W + j] = src[k * ld + j].
// A plain loop, not memcpy: rows are only W (<= 32) floats, too short to pay for a call each.
inline void pack_rows(const float* src, int64_t ld, int count, int kc, int W, float* out) {
  for (int k = 0; k < kc; ++k, src += ld, out += W) {
    for (int j = 0; j < count; ++j) out[j] = src[j];
    for (int j = count; j < W; ++j) out[j] = 0.0f;
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

// As pack_transposed_portable, with 8x8 blocks transposed in AVX registers (4x4 in SSE for a leftover
// group of four columns); ragged edges fall back to scalar code.
__attribute__((target("avx2"))) inline void pack_transposed_avx2(const float* src, int64_t ld, int count,
                                                                 int kc, int W, float* out) {
  int j = 0;
  for (; j + 8 <= count; j += 8) {
    const float* s = src + j * ld;
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 r0 = _mm256_loadu_ps(s + 0 * ld + k), r1 = _mm256_loadu_ps(s + 1 * ld + k);
      __m256 r2 = _mm256_loadu_ps(s + 2 * ld + k), r3 = _mm256_loadu_ps(s + 3 * ld + k);
      __m256 r4 = _mm256_loadu_ps(s + 4 * ld + k), r5 = _mm256_loadu_ps(s + 5 * ld + k);
      __m256 r6 = _mm256_loadu_ps(s + 6 * ld + k), r7 = _mm256_loadu_ps(s + 7 * ld + k);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = out + k * W + j;
      _mm256_storeu_ps(o + 0 * W, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(o + 1 * W, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(o + 2 * W, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(o + 3 * W, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(o + 4 * W, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(o + 5 * W, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(o + 6 * W, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(o + 7 * W, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; k < kc; ++k)
      for (int jj = 0; jj < 8; ++jj) out[k * W + j + jj] = s[jj * ld + k];
  }
  for (; j + 4 <= count; j += 4) {
    const float* s = src + j * ld;
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
      __m128 r0 = _mm_loadu_ps(s + k), r1 = _mm_loadu_ps(s + ld + k);
      __m128 r2 = _mm_loadu_ps(s + 2 * ld + k), r3 = _mm_loadu_ps(s + 3 * ld + k);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* o = out + k * W + j;
      _mm_storeu_ps(o, r0);
      _mm_storeu_ps(o + W, r1);
      _mm_storeu_ps(o + 2 * W, r2);
      _mm_storeu_ps(o + 3 * W, r3);
    }
    for (; k < kc; ++k)
      for (int jj = 0; jj < 4; ++jj) out[k * W + j + jj] = s[jj * ld + k];
  }
  for (; j < count; ++j)
    for (int k = 0; k < kc; ++k) out[k * W + j] = src[j * ld + k];
  if (count < W)
    for (int k = 0; k < kc; ++k)
      for (int jj = count; jj < W; ++jj) out[k * W + jj] = 0.0f;
}

#endif

}  // namespace dno::gemm
