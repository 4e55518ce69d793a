// Packed SGEMM (Goto/BLIS-style). For each block of K (kc deep), op(A) and op(B) are packed into panels
// of MR-row and NR-column slivers (alpha folded into A), then C is swept in tiles: a tile keeps a kc x NT
// piece of packed B in L2 while the microkernel streams MR-row slivers of packed A past it, each sliver
// staying in L1 across the tile's NR-column slivers. Packing and tiles are shared out over the pool.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gemm_internal.h"
#include "gemm_microkernels.h"
#include "threadpool.h"

namespace dno {
namespace {

using gemm::KernelInfo;

constexpr int kMaxKC = 256;         // depth of one packed block
constexpr int kMaxMB = 4096;        // rows of op(A) packed at once
constexpr int kMaxNB = 4096;        // columns of op(B) packed at once
constexpr int kTileSlivers = 8;     // MR-row slivers per tile
constexpr int kTileCols = 256;      // columns per tile (rounded to NR)
constexpr int64_t kParallelFlops = int64_t{1} << 21;  // below this, threads cost more than they save

constexpr KernelInfo kPortable{"portable", 4, 16, gemm::micro_portable};
#ifdef DNO_GEMM_X86
constexpr KernelInfo kAvx2{"avx2", 6, 16, gemm::micro_avx2};
constexpr KernelInfo kAvx512{"avx512", 12, 32, gemm::micro_avx512};
#endif

const KernelInfo* best_kernel() {
#ifdef DNO_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return &kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &kAvx2;
#endif
  return &kPortable;
}

std::atomic<const KernelInfo*> g_kernel{best_kernel()};

// One growing, 64-byte aligned buffer per calling thread (sgemm may run inside another kernel's
// parallel_for, on several threads at once).
class Workspace {
 public:
  ~Workspace() { std::free(data_); }
  float* get(size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      capacity_ = (floats + 15) & ~size_t{15};
      data_ = static_cast<float*>(std::aligned_alloc(64, capacity_ * sizeof(float)));
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// Sliver s of packed A: rows [s*MR, s*MR+MR) of alpha * op(A), columns [k0, k0+kc), stored k-major
// (MR values per k), zero-padded past the last row.
void pack_a_sliver(const KernelInfo& kern, bool transA, const float* A, int64_t lda, int row0, int rows,
                   int k0, int kc, float alpha, float* out) {
  const int MR = kern.mr;
  if (transA) {  // op(A)(i, k) = A[k, i]: each k is a contiguous run of rows
    for (int k = 0; k < kc; ++k) {
      const float* src = A + (k0 + k) * lda + row0;
      float* dst = out + k * MR;
      for (int r = 0; r < rows; ++r) dst[r] = alpha * src[r];
      for (int r = rows; r < MR; ++r) dst[r] = 0.0f;
    }
    return;
  }
  for (int r = 0; r < rows; ++r) {
    const float* src = A + (row0 + r) * lda + k0;
    for (int k = 0; k < kc; ++k) out[k * MR + r] = alpha * src[k];
  }
  for (int r = rows; r < MR; ++r)
    for (int k = 0; k < kc; ++k) out[k * MR + r] = 0.0f;
}

// Sliver s of packed B: columns [col0, col0+NR) of op(B), rows [k0, k0+kc), NR values per k.
void pack_b_sliver(const KernelInfo& kern, bool transB, const float* B, int64_t ldb, int col0, int cols,
                   int k0, int kc, float* out) {
  const int NR = kern.nr;
  if (!transB) {  // op(B)(k, j) = B[k, j]: each k is a contiguous run of columns
    for (int k = 0; k < kc; ++k) {
      const float* src = B + (k0 + k) * ldb + col0;
      float* dst = out + k * NR;
      std::memcpy(dst, src, cols * sizeof(float));
      for (int j = cols; j < NR; ++j) dst[j] = 0.0f;
    }
    return;
  }
  for (int j = 0; j < cols; ++j) {
    const float* src = B + (col0 + j) * ldb + k0;
    for (int k = 0; k < kc; ++k) out[k * NR + j] = src[k];
  }
  for (int j = cols; j < NR; ++j)
    for (int k = 0; k < kc; ++k) out[k * NR + j] = 0.0f;
}

void scale_c(int M, int N, float beta, float* C, int64_t ldc) {
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f)
      std::fill(c, c + N, 0.0f);
    else if (beta != 1.0f)
      for (int j = 0; j < N; ++j) c[j] *= beta;
  }
}

// Splits [0, total) into `parts` near-equal pieces, each a multiple of `align` except the last.
int block_size(int total, int max_block, int align) {
  const int parts = (total + max_block - 1) / max_block;
  const int size = (total + parts - 1) / parts;
  return (size + align - 1) / align * align;
}

}  // namespace

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const KernelInfo& kern = *g_kernel.load(std::memory_order_relaxed);
  const int MR = kern.mr, NR = kern.nr;
  const int kc_max = block_size(K, kMaxKC, 1);
  const int mb_max = block_size(M, kMaxMB, MR);
  const int nb_max = block_size(N, kMaxNB, NR);
  const int tile_cols = std::max(NR, kTileCols / NR * NR);
  const int tile_rows = kTileSlivers * MR;

  static thread_local Workspace workspace;
  const size_t a_floats = (static_cast<size_t>(mb_max) * kc_max + 15) & ~size_t{15};  // keeps B aligned
  float* const packed_a = workspace.get(a_floats + static_cast<size_t>(nb_max) * kc_max);
  float* const packed_b = packed_a + a_floats;

  const int64_t flops = int64_t{2} * M * N * K;
  const bool parallel = flops >= kParallelFlops;
  const int64_t pack_grain = parallel ? 4 : INT64_MAX;
  const int64_t tile_grain = parallel ? 1 : INT64_MAX;

  for (int j0 = 0; j0 < N; j0 += nb_max) {
    const int nb = std::min(nb_max, N - j0);
    const int b_slivers = (nb + NR - 1) / NR;
    for (int i0 = 0; i0 < M; i0 += mb_max) {
      const int mb = std::min(mb_max, M - i0);
      const int a_slivers = (mb + MR - 1) / MR;
      for (int k0 = 0; k0 < K; k0 += kc_max) {
        const int kc = std::min(kc_max, K - k0);
        const float beta_k = k0 == 0 ? beta : 1.0f;

        parallel_for(a_slivers + b_slivers, pack_grain, [&](int64_t s0, int64_t s1) {
          for (int64_t s = s0; s < s1; ++s) {
            if (s < a_slivers) {
              const int row = static_cast<int>(s) * MR;
              pack_a_sliver(kern, transA, A, lda, i0 + row, std::min(MR, mb - row), k0, kc, alpha,
                            packed_a + s * MR * kc);
            } else {
              const int col = static_cast<int>(s - a_slivers) * NR;
              pack_b_sliver(kern, transB, B, ldb, j0 + col, std::min(NR, nb - col), k0, kc,
                            packed_b + (s - a_slivers) * NR * kc);
            }
          }
        });

        // Tiles in column-major order so that consecutive tiles on one thread reuse the B piece in L2.
        const int row_tiles = (mb + tile_rows - 1) / tile_rows;
        const int col_tiles = (nb + tile_cols - 1) / tile_cols;
        const int tiles = row_tiles * col_tiles;
        std::atomic<int> next_tile{0};
        parallel_for(std::min<int64_t>(num_threads(), tiles), tile_grain, [&](int64_t, int64_t) {
          for (int t = next_tile.fetch_add(1); t < tiles; t = next_tile.fetch_add(1)) {
            const int tr = t % row_tiles, tc = t / row_tiles;
            const int r_end = std::min(mb, (tr + 1) * tile_rows);
            const int c_end = std::min(nb, (tc + 1) * tile_cols);
            for (int r = tr * tile_rows; r < r_end; r += MR) {
              const float* a = packed_a + static_cast<int64_t>(r) * kc;
              for (int c = tc * tile_cols; c < c_end; c += NR) {
                kern.run(kc, a, packed_b + static_cast<int64_t>(c) * kc,
                         C + static_cast<int64_t>(i0 + r) * ldc + j0 + c, ldc, beta_k,
                         std::min(MR, mb - r), std::min(NR, nb - c));
              }
            }
          }
        });
      }
    }
  }
}

const char* sgemm_kernel_name() { return g_kernel.load()->name; }

namespace gemm {

bool use_kernel(const char* name) {
  const KernelInfo* best = best_kernel();
  const KernelInfo* candidates[] = {
#ifdef DNO_GEMM_X86
      &kAvx512,
      &kAvx2,
#endif
      &kPortable};
  // A kernel is usable when it is the best one or a fallback below it (the list runs best first).
  bool reachable = false;
  for (const KernelInfo* k : candidates) {
    reachable = reachable || k == best;
    if (reachable && std::strcmp(k->name, name) == 0) {
      g_kernel.store(k);
      return true;
    }
  }
  return false;
}

}  // namespace gemm
}  // namespace dno
