// SGEMM (Goto/BLIS-style) in two pool jobs per block of op(B) (at most kMaxKB x kMaxNB):
// 1. pack: op(B) into NR-column slivers (a transposed A into MR-row ones), k-major (the microkernel
//    reads NR values per k contiguously), the threads claiming slivers one by one;
// 2. compute: the threads claim tiles of C one by one (a thread that runs slower takes fewer); a tile
//    walks the k-blocks, and in each streams its MR-row slivers of A, read in place or packed (each staying
//    in L1), past the tile's kc x tile-cols piece of packed B (in L2). Tiles go column by column, so
//    consecutive tiles reuse B.
// A tile's k-blocks always run on one thread in the same order: results do not depend on the threads.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gemm_internal.h"
#include "gemm_microkernels.h"
#include "gemm_pack.h"
#include "gemm_schedule.h"
#include "threadpool.h"

namespace dno {
namespace {

using gemm::block_size;
using gemm::for_each_claimed;
using gemm::MicroKernel;
using gemm::PackTransposed;
using gemm::round_up;

struct KernelInfo {
  const char* name;
  int mr;
  int nr;
  MicroKernel run;
  PackTransposed pack_transposed;
};

constexpr int kMaxNB = 2048;    // columns of op(B) packed per block
constexpr int kMaxKB = 512;     // depth packed per block: a column of tiles keeps its B (kb x 256) in L2
constexpr int kMaxKC = 256;     // depth of one microkernel call
constexpr int kMaxTileSlivers = 8;
constexpr int kMaxTileCols = 256;
constexpr int kTilesPerThread = 4;  // enough tiles to balance threads that run at different speeds
constexpr int64_t kParallelFlops = int64_t{1} << 21;  // below this, threads cost more than they save
constexpr int kMaxPackedRows = 16384;  // a transposed A is packed whole per block: at most this x kMaxKB

constexpr KernelInfo kPortable{"portable", 4, 16, gemm::micro_portable, gemm::pack_transposed_portable};
#ifdef DNO_GEMM_X86
constexpr KernelInfo kAvx2{"avx2", 6, 16, gemm::micro_avx2, gemm::pack_transposed_avx2};
constexpr KernelInfo kAvx512{"avx512", 12, 32, gemm::micro_avx512, gemm::pack_transposed_avx2};
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

}  // namespace

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    gemm::scale_c(M, N, beta, C, ldc);
    return;
  }
  const KernelInfo& kern = *g_kernel.load(std::memory_order_relaxed);
  const int MR = kern.mr, NR = kern.nr;
  if (transA && M > kMaxPackedRows) {  // rows of C are independent: taller ones go in row blocks
    const int mb = block_size(M, kMaxPackedRows, MR);
    for (int i0 = 0; i0 < M; i0 += mb)
      sgemm(true, transB, std::min(mb, M - i0), N, K, alpha, A + i0, lda, B, ldb, beta,
            C + static_cast<int64_t>(i0) * ldc, ldc);
    return;
  }
  const int nb_max = block_size(N, kMaxNB, NR);
  const int kb_max = block_size(K, kMaxKB, 1);
  const bool parallel = int64_t{2} * M * N * K >= kParallelFlops && num_threads() > 1 && gemm::pool_is_prompt();

  // Full MR-row slivers of an untransposed A are read in place: a[r * rs + k], from op(A)(r0, k0), MR rows
  // each read contiguously. Packing them measured slower, as each is reused from L1 across its tile's
  // columns anyway. A transposed A (a weight gradient's dY^T) would be read one short piece per k, each
  // lda floats apart: hundreds of pages per sliver, a TLB miss per k. All its slivers are packed once per
  // block, in the parallel pack job beside B's. A last, shorter sliver is packed (zero-padded) for the
  // whole block either way, since the microkernel reads MR rows.
  const int a_full = M / MR;
  const int a_first = transA ? 0 : a_full;  // the first packed sliver
  const int a_packed = (M + MR - 1) / MR - a_first;

  static thread_local gemm::Workspace workspace;
  const size_t a_floats =  // rounded to keep B 64-byte aligned
      (static_cast<size_t>(a_packed) * MR * kb_max + 15) & ~size_t{15};
  float* const packed_a =
      static_cast<float*>(workspace.get(sizeof(float) * (a_floats + static_cast<size_t>(nb_max) * kb_max)));
  float* const packed_b = packed_a + a_floats;

  // Tiles: at most kMaxTileSlivers x kMaxTileCols, smaller when that leaves too few per thread.
  const int want_tiles = parallel ? num_threads() * kTilesPerThread : 1;
  const int tile_cols = std::min(round_up(nb_max, NR), kMaxTileCols / NR * NR);
  const int max_col_tiles = (nb_max + tile_cols - 1) / tile_cols;
  const int want_row_tiles = (want_tiles + max_col_tiles - 1) / max_col_tiles;
  const int tile_rows =
      std::clamp(round_up((M + want_row_tiles - 1) / want_row_tiles, MR), MR, kMaxTileSlivers * MR);
  const int row_tiles = (M + tile_rows - 1) / tile_rows;

  for (int j0 = 0; j0 < N; j0 += nb_max) {
    const int nb = std::min(nb_max, N - j0);
    const int b_slivers = (nb + NR - 1) / NR;
    int col_tiles = (nb + tile_cols - 1) / tile_cols;
    int cols_per_tile = tile_cols;
    if (row_tiles * col_tiles < want_tiles) {
      const int want_col_tiles = (want_tiles + row_tiles - 1) / row_tiles;
      cols_per_tile = std::clamp(round_up((nb + want_col_tiles - 1) / want_col_tiles, NR), NR, tile_cols);
      col_tiles = (nb + cols_per_tile - 1) / cols_per_tile;
    }

    for (int p0 = 0; p0 < K; p0 += kb_max) {
      const int kb = std::min(kb_max, K - p0);
      const int kc_max = block_size(kb, kMaxKC, 1);
      const float beta_block = p0 == 0 ? beta : 1.0f;

      for_each_claimed(a_packed + b_slivers, parallel, [&](int item) {
        if (item < a_packed) {  // op(A) rows (a_first + item)*MR ..., columns p0 ...
          const int row = (a_first + item) * MR, rows = std::min(MR, M - row);
          float* out = packed_a + static_cast<size_t>(item) * MR * kb;
          if (transA)
            gemm::pack_rows(A + static_cast<int64_t>(p0) * lda + row, lda, rows, kb, MR, out);
          else
            kern.pack_transposed(A + static_cast<int64_t>(row) * lda + p0, lda, rows, kb, MR, out);
        } else {  // op(B) rows p0 ..., columns j0 + t*NR ...
          const int t = item - a_packed;
          const int col = j0 + t * NR, cols = std::min(NR, nb - t * NR);
          float* out = packed_b + static_cast<size_t>(t) * NR * kb;
          if (transB)
            kern.pack_transposed(B + static_cast<int64_t>(col) * ldb + p0, ldb, cols, kb, NR, out);
          else
            gemm::pack_rows(B + static_cast<int64_t>(p0) * ldb + col, ldb, cols, kb, NR, out);
        }
      });

      for_each_claimed(row_tiles * col_tiles, parallel, [&](int t) {
        const int tr = t % row_tiles, tc = t / row_tiles;
        const int r0 = tr * tile_rows, r1 = std::min(M, r0 + tile_rows);
        const int c0 = tc * cols_per_tile, c1 = std::min(nb, c0 + cols_per_tile);
        for (int k0 = 0; k0 < kb; k0 += kc_max) {
          const int kc = std::min(kc_max, kb - k0);
          const float beta_k = k0 == 0 ? beta_block : 1.0f;
          for (int r = r0; r < r1; r += MR) {
            const int s = r / MR;
            const bool in_place = s < a_first;
            const float* a = in_place ? A + static_cast<int64_t>(r) * lda + p0 + k0
                                      : packed_a + (static_cast<size_t>(s - a_first) * kb + k0) * MR;
            const int64_t rs = in_place ? lda : 1, cs = in_place ? 1 : MR;
            for (int c = c0; c < c1; c += NR) {
              const float* b = packed_b + static_cast<size_t>(c) * kb + static_cast<size_t>(k0) * NR;
              kern.run(kc, a, rs, cs, b, C + static_cast<int64_t>(r) * ldc + j0 + c, ldc, alpha, beta_k,
                       std::min(MR, M - r), std::min(NR, nb - c));
            }
          }
        }
      });
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
