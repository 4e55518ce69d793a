// bf16 packing and block kernels (private to gemm_bf16.cpp), each with its own target attributes so the
// addon builds without -m flags and runs on any x86-64 (gemm_bf16.cpp checks the CPU before calling).
//
// Packed layouts for one k-block of depth kb, padded with zeros to Kp = kb rounded up to 32:
// - B panel: 16-column slivers in VNNI order, sliver[(k / 2) * 32 + 2 * j + k % 2] = op(B)(k, j): one
//   64-byte row per pair of k, what TDPBF16PS and VDPBF16PS read; an even number of slivers.
// - A panel: 32-row groups (the last one zero-padded); for AMX, bf16 rows of Kp values (a tile's rows); for
//   VDPBF16PS, the slivers of op(A)^T in B's VNNI order, two per group (each row's pair of k is one 32-bit
//   broadcast).
// A block kernel computes a 32 x 32 float32 product of one A group and two adjacent slivers.
#pragma once

#include <cstdint>
#include <cstring>

#include "bf16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DNO_BGEMM_X86 1
#define DNO_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define DNO_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

namespace dno::gemm::bf16k {

#ifdef DNO_BGEMM_X86

inline __mmask16 mask16(int n) { return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1); }
inline __mmask32 mask32(int n) { return n >= 32 ? 0xffffffffu : n <= 0 ? 0 : (1u << n) - 1; }

// 32 consecutive values (the first n real, the rest 0) as bf16.
DNO_BF16_TARGET inline __m512i load32(const float* src, int n) {
  const __m512 lo = _mm512_maskz_loadu_ps(mask16(n), src);
  const __m512 hi = _mm512_maskz_loadu_ps(mask16(n - 16), src + 16);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}
DNO_BF16_TARGET inline __m512i load32(const bf16* src, int n) { return _mm512_maskz_loadu_epi16(mask32(n), src); }

// 16 consecutive values (the first n real) as bf16.
DNO_BF16_TARGET inline __m256i load16(const float* src, int n) {
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask16(n), src)));
}
DNO_BF16_TARGET inline __m256i load16(const bf16* src, int n) { return _mm256_maskz_loadu_epi16(mask16(n), src); }

// 32-bit lane i = (lo[i], hi[i]): two k rows into VNNI pairs.
DNO_BF16_TARGET inline __m512i interleave(__m256i lo, __m256i hi) {
  alignas(64) static const uint16_t order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_permutexvar_epi16(_mm512_load_si512(order), both);
}

// Transposes a 16 x 16 matrix of 32-bit elements held one row per register.
DNO_BF16_TARGET inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // u[4i + q], 128-bit lane L: rows 4i..4i+3 of column 4L + q.
  for (int q = 0; q < 4; ++q) {
    const __m512i a = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88), b = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
    const __m512i c = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88);
    const __m512i d = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
    r[q] = _mm512_shuffle_i32x4(a, c, 0x88);
    r[8 + q] = _mm512_shuffle_i32x4(a, c, 0xdd);
    r[4 + q] = _mm512_shuffle_i32x4(b, d, 0x88);
    r[12 + q] = _mm512_shuffle_i32x4(b, d, 0xdd);
  }
}

// One 32-row group of the A panel for AMX from op(A) at its (row0, k0): rows real rows, kb real columns.
// op(A)(r, k) is A[r * lda + k], or A[k * lda + r] when trans.
DNO_BF16_TARGET inline void pack_a_group(const float* A, bool trans, int64_t lda, int rows, int kb, int Kp,
                                         bf16* out) {
  if (!trans) {
    for (int r = 0; r < 32; ++r)
      for (int k = 0; k < Kp; k += 32)
        _mm512_store_si512(out + r * Kp + k, r < rows ? load32(A + r * lda + k, kb - k) : _mm512_setzero_si512());
    return;
  }
  for (int r0 = 0; r0 < 32; r0 += 16) {
    const int lanes = rows - r0;
    for (int k0 = 0; k0 < Kp; k0 += 32) {
      __m512i v[16];
      for (int p = 0; p < 16; ++p) {
        const int k = k0 + 2 * p;
        const __m256i lo = k < kb ? load16(A + k * lda + r0, lanes) : _mm256_setzero_si256();
        const __m256i hi = k + 1 < kb ? load16(A + (k + 1) * lda + r0, lanes) : _mm256_setzero_si256();
        v[p] = interleave(lo, hi);
      }
      transpose16(v);
      for (int j = 0; j < 16; ++j) _mm512_store_si512(out + (r0 + j) * Kp + k0, v[j]);
    }
  }
}

// Slivers [0, count) of a panel in VNNI order (sliver s at out + s * 16 * Kp) from op(X)(k, j), k < kb,
// j < cols (zero past cols): X[k * ldx + j], or X[j * ldx + k] when trans. Untransposed, each row of X is
// read once across all the slivers: one sliver at a time would stride down 64-byte columns, which the
// hardware prefetchers follow badly (measured 4-6x slower).
template <typename T>
DNO_BF16_TARGET inline void pack_slivers(const T* X, bool trans, int64_t ldx, int cols, int kb, int Kp, int count,
                                         bf16* out) {
  if (!trans) {
    for (int k = 0; k < Kp; k += 2)
      for (int s = 0; s < count; ++s) {
        const T* x = X + k * ldx + 16 * s;
        const int n = cols - 16 * s;
        const __m256i lo = k < kb ? load16(x, n) : _mm256_setzero_si256();
        const __m256i hi = k + 1 < kb ? load16(x + ldx, n) : _mm256_setzero_si256();
        _mm512_store_si512(out + size_t(s) * 16 * Kp + k * 16, interleave(lo, hi));
      }
    return;
  }
  for (int s = 0; s < count; ++s) {
    bf16* sliver = out + size_t(s) * 16 * Kp;
    const T* x = X + int64_t(16) * s * ldx;
    const int n = cols - 16 * s;
    for (int k0 = 0; k0 < Kp; k0 += 32) {
      __m512i v[16];
      for (int j = 0; j < 16; ++j) v[j] = j < n ? load32(x + j * ldx + k0, kb - k0) : _mm512_setzero_si512();
      transpose16(v);
      for (int p = 0; p < 16; ++p) _mm512_store_si512(sliver + (k0 + 2 * p) * 16, v[p]);
    }
  }
}

// c (m x n, m, n <= 32) = alpha * acc (32 x 32) + beta * c; beta = 0 never reads c.
DNO_BF16_TARGET inline void store_block(const float* acc, float* c, int64_t ldc, int m, int n, float alpha,
                                        float beta) {
  const __mmask16 m0 = mask16(n), m1 = mask16(n - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < m; ++r, c += ldc, acc += 32) {
    __m512 c0 = _mm512_mul_ps(va, _mm512_load_ps(acc)), c1 = _mm512_mul_ps(va, _mm512_load_ps(acc + 16));
    if (beta != 0.0f) {
      c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), c0);
      c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), c1);
    }
    _mm512_mask_storeu_ps(c, m0, c0);
    _mm512_mask_storeu_ps(c + 16, m1, c1);
  }
}

// VDPBF16PS on rows [R0, R0 + R) of one A group in VNNI order times a sliver pair:
// 2R accumulators, the A pair of each row broadcast from memory. Writes the first m rows and n columns of
// the strip straight into c (C's row R0 of the group): alpha * product + beta * c; beta = 0 never reads c.
template <int R0, int R>
DNO_BF16_TARGET inline void strip_avx512bf16(int Kp, const bf16* a, const bf16* b, float* c, int64_t ldc, int m,
                                             int n, float alpha, float beta) {
  const bf16* a_hi = a + 16 * Kp;
  const bf16* b1 = b + 16 * Kp;
  __m512 acc[R][2];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int p = 0; p < Kp / 2; ++p) {
    const __m512bh x0 = reinterpret_cast<__m512bh>(_mm512_load_si512(b + p * 32));
    const __m512bh x1 = reinterpret_cast<__m512bh>(_mm512_load_si512(b1 + p * 32));
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      constexpr int kSliverRows = 16;
      const int r = R0 + i;
      int32_t pair;
      std::memcpy(&pair, (r < kSliverRows ? a : a_hi) + p * 32 + 2 * (r % kSliverRows), 4);
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, x0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, x1);
    }
  }
  const __mmask16 m0 = mask16(n), m1 = mask16(n - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    if (i >= m) break;
    float* cr = c + i * ldc;
    __m512 c0 = _mm512_mul_ps(va, acc[i][0]), c1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.0f) {
      c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), c0);
      c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), c1);
    }
    _mm512_mask_storeu_ps(cr, m0, c0);
    _mm512_mask_storeu_ps(cr + 16, m1, c1);
  }
}

// c (m x n, m, n <= 32) = alpha * (A group . sliver pair) + beta * c, in strips of 12, 12 and 8 rows
// (only those that hold real rows).
DNO_BF16_TARGET inline void block_avx512bf16(int Kp, const bf16* a, const bf16* b, float* c, int64_t ldc, int m,
                                             int n, float alpha, float beta) {
  strip_avx512bf16<0, 12>(Kp, a, b, c, ldc, m, n, alpha, beta);
  if (m > 12) strip_avx512bf16<12, 12>(Kp, a, b, c + 12 * ldc, ldc, m - 12, n, alpha, beta);
  if (m > 24) strip_avx512bf16<24, 8>(Kp, a, b, c + 24 * ldc, ldc, m - 24, n, alpha, beta);
}

// AMX palette 1: tiles 0-3 accumulate C (16 x 16 float32), 4-5 hold A (16 rows x 32 bf16), 6-7 B
// (16 pairs of k x 16 columns). The configuration is per thread; each job loads it before its blocks.
struct TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

constexpr TileConfig tile_config() {
  TileConfig cfg{1, 0, {}, {}, {}};
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  return cfg;
}

// A constant in memory: GCC's _tile_loadconfig tells the compiler it reads only a pointer's worth of its
// argument, so a configuration built on the stack just before it can lose its stores.
alignas(64) inline constexpr TileConfig kTileConfig = tile_config();

DNO_AMX_TARGET inline void amx_configure() { _tile_loadconfig(&kTileConfig); }

// TDPBF16PS on 2 x 2 tiles: a 32 x 32 block per 32-deep step.
DNO_AMX_TARGET inline void block_amx(int Kp, const bf16* a, const bf16* b, float* acc) {
  const bf16* a1 = a + 16 * Kp;
  const bf16* b1 = b + 16 * Kp;
  const int64_t stride = int64_t(Kp) * 2;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int k = 0; k < Kp; k += 32) {
    _tile_loadd(4, a + k, stride);
    _tile_loadd(6, b + k * 16, 64);
    _tile_loadd(7, b1 + k * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + k, stride);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  _tile_stored(2, acc + 16 * 32, 128);
  _tile_stored(3, acc + 16 * 32 + 16, 128);
}

DNO_AMX_TARGET inline void amx_release() { _tile_release(); }

#endif  // DNO_BGEMM_X86

}  // namespace dno::gemm::bf16k
