// SGEMM microkernels (private to gemm.cpp). Each computes one MR x NR tile of C from a sliver of A, row r
// and step k at a[r * rs + k * cs] (packed: rs = 1, cs = MR; or read in place from op(A)), and a packed
// sliver of B, b kc x NR (NR values per k, 64-byte aligned). Only the top-left m x n of the tile is
// written: C = alpha * acc + beta * C, where beta == 0 never reads C (NaN-safe). All MR rows of A are read.
// SIMD kernels carry their own target attributes so the addon builds without -mavx* flags and runs on
// any x86-64; gemm.cpp picks one at run time from the CPU's features.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DNO_GEMM_X86 1
#endif

namespace dno::gemm {

using MicroKernel = void (*)(int kc, const float* a, int64_t rs, int64_t cs, const float* b, float* c,
                             int64_t ldc, float alpha, float beta, int m, int n);


// Plain C++: the compiler vectorises it for the baseline ISA (SSE2 on x86-64).
inline void micro_portable(int kc, const float* a, int64_t rs, int64_t cs, const float* b, float* c,
                           int64_t ldc, float alpha, float beta, int m, int n) {
  constexpr int MR = 4, NR = 16;
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; ++k, a += cs, b += NR)
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] += a[r * rs] * b[j];
  for (int r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < n; ++j) cr[j] = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * cr[j];
  }
}

#ifdef DNO_GEMM_X86

// 6 x 16: 12 ymm accumulators, two B vectors, one broadcast A value per FMA pair.
__attribute__((target("avx2,fma"))) inline void micro_avx2(int kc, const float* a, int64_t rs, int64_t cs,
                                                           const float* b, float* c, int64_t ldc,
                                                           float alpha, float beta, int m, int n) {
  constexpr int MR = 6, NR = 16;
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const float* a3 = a + 3 * rs;  // rows 3q + t are at a_{3q} + t * rs: base + index * scale addressing
  for (int k = 0; k < kc; ++k, a += cs, a3 += cs, b += NR) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 ar = _mm256_broadcast_ss((r < 3 ? a : a3) + (r % 3) * rs);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = _mm256_mul_ps(va, acc[r][0]);
    acc[r][1] = _mm256_mul_ps(va, acc[r][1]);
  }
  if (m == MR && n == NR) {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      float* cr = c + r * ldc;
      if (beta != 0.0f) {
        acc[r][0] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), acc[r][1]);
      }
      _mm256_storeu_ps(cr, acc[r][0]);
      _mm256_storeu_ps(cr + 8, acc[r][1]);
    }
    return;
  }
  alignas(32) float tile[MR][NR];
  for (int r = 0; r < MR; ++r) {
    _mm256_store_ps(tile[r], acc[r][0]);
    _mm256_store_ps(tile[r] + 8, acc[r][1]);
  }
  for (int r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < n; ++j) cr[j] = beta == 0.0f ? tile[r][j] : tile[r][j] + beta * cr[j];
  }
}

// 12 x 32: 24 zmm accumulators. They go through a stack tile before the epilogue so that the k loop
// keeps every operand in registers (GCC spills B otherwise); edges use masked loads and stores.
__attribute__((target("avx512f,fma"))) inline void micro_avx512(int kc, const float* a, int64_t rs,
                                                                int64_t cs, const float* b, float* c,
                                                                int64_t ldc, float alpha, float beta, int m,
                                                                int n) {
  constexpr int MR = 12, NR = 32;
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  // Rows 3q + t are at a_{3q} + t * rs: four row pointers and base + index * scale addressing.
  const float *a0 = a, *a3 = a + 3 * rs, *a6 = a + 6 * rs, *a9 = a + 9 * rs;
  for (int k = 0; k < kc; ++k, a0 += cs, a3 += cs, a6 += cs, a9 += cs, b += NR) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const float* base = r < 3 ? a0 : r < 6 ? a3 : r < 9 ? a6 : a9;
      const __m512 ar = _mm512_set1_ps(base[(r % 3) * rs]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
  alignas(64) float tile[MR][NR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(tile[r], acc[r][0]);
    _mm512_store_ps(tile[r] + 16, acc[r][1]);
  }
  const __mmask16 mask0 = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 mask1 = n >= 32 ? 0xffff : n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    __m512 c0 = _mm512_mul_ps(va, _mm512_load_ps(tile[r]));
    __m512 c1 = _mm512_mul_ps(va, _mm512_load_ps(tile[r] + 16));
    if (beta != 0.0f) {
      c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask0, cr), c0);
      c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask1, cr + 16), c1);
    }
    _mm512_mask_storeu_ps(cr, mask0, c0);
    _mm512_mask_storeu_ps(cr + 16, mask1, c1);
  }
}

#endif  // DNO_GEMM_X86

}  // namespace dno::gemm
