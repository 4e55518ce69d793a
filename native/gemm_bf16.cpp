// bf16 GEMM (gemm_bf16.h) in the shape of sgemm (gemm.cpp): per block of depth one pool job packs op(A)
// into a bf16 panel of 32-row groups and op(B) into VNNI slivers (gemm_bf16_kernels.h), rounding float32
// inputs to bf16 on the way, and a second job computes the tiles of C, each thread claiming one at a time. A tile walks its 32-row groups and, for each, the slivers' 32-column pairs, so
// the group's A stays in L1 while B streams from L2. A block's k-steps and the k-blocks always run in the
// same order: results do not depend on the threads.
#include "gemm_bf16.h"

// GCC 12 flags the intrinsics' own undefined-register idiom inside the transposes (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "gemm_bf16_kernels.h"
#include "gemm_schedule.h"
#include "threadpool.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace dno {
namespace {

using gemm::block_size;
using gemm::for_each_claimed;
using gemm::round_up;

constexpr int kMaxNB = 2048;  // columns of op(B) packed per block
// Depth per block. AMX: one A group (32 x 512 bf16, 32 KiB) stays in L1. VDPBF16PS, several times slower
// per block, can stream A and B from L2 as well; deeper blocks then write C fewer times (768 measured 5-10%
// faster than 512 on Zen 5 for the training shapes of SmolLM2-135M, whose K = 576 stays one block).
constexpr int kMaxKBAmx = 512;
constexpr int kMaxKBAvx512Bf16 = 768;
constexpr int kMaxTileGroups = 4;
constexpr int kMaxTilePairs = 8;
constexpr int kTilesPerThread = 4;
constexpr int kPackSlivers = 8;  // B slivers per packing item
constexpr int kPackGroups = 4;   // A groups per packing item (VDPBF16PS layout)
constexpr int64_t kParallelFlops = int64_t{1} << 21;

enum class Kernel { kAmx, kAvx512Bf16, kEmulated };
const char* kernel_name(Kernel k) {
  return k == Kernel::kAmx ? "amx" : k == Kernel::kAvx512Bf16 ? "avx512bf16" : "emulated";
}

#ifdef DNO_BGEMM_X86
bool cpu_has_avx512bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

// AMX needs the CPU feature and, on Linux, the kernel's permission for this process to use the tile
// state (XFEATURE_XTILEDATA), asked for once.
bool amx_usable() {
  if (!cpu_has_avx512bf16() || !__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16"))
    return false;
#if defined(__linux__)
  // The request can report success while the kernel (or a VM) withholds the state: read the grant back.
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  uint64_t granted = 0;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0 &&
         syscall(SYS_arch_prctl, kArchGetXcompPerm, &granted) == 0 && (granted >> kXfeatureXtiledata & 1);
#else
  return false;
#endif
}
#endif

// Usable kernels, best first.
const std::vector<Kernel>& usable_kernels() {
  static const std::vector<Kernel> kernels = [] {
    std::vector<Kernel> out;
#ifdef DNO_BGEMM_X86
    if (amx_usable()) out.push_back(Kernel::kAmx);
    if (cpu_has_avx512bf16()) out.push_back(Kernel::kAvx512Bf16);
#endif
    out.push_back(Kernel::kEmulated);
    return out;
  }();
  return kernels;
}

std::atomic<Kernel> g_kernel{usable_kernels().front()};

// A float32 copy of the stored matrix (rows x cols, leading dimension ld) rounded to bf16, compact.
template <typename T>
std::vector<float> rounded_copy(const T* src, int rows, int cols, int64_t ld) {
  std::vector<float> out(size_t(rows) * cols);
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int c = 0; c < cols; ++c) {
        const T x = src[r * ld + c];
        if constexpr (std::is_same_v<T, float>)
          out[size_t(r) * cols + c] = bf16_to_float(float_to_bf16(x));
        else
          out[size_t(r) * cols + c] = bf16_to_float(x);
      }
  });
  return out;
}

template <typename TB>
void bgemm_emulated(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                    const TB* B, int ldb, float beta, float* C, int ldc) {
  const int a_rows = transA ? K : M, a_cols = transA ? M : K, b_rows = transB ? N : K, b_cols = transB ? K : N;
  const std::vector<float> a = rounded_copy(A, a_rows, a_cols, lda), b = rounded_copy(B, b_rows, b_cols, ldb);
  sgemm(transA, transB, M, N, K, alpha, a.data(), a_cols, b.data(), b_cols, beta, C, ldc);
}

#ifdef DNO_BGEMM_X86
template <typename TB>
void bgemm_packed(Kernel kernel, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const TB* B, int ldb, float beta, float* C, int ldc) {
  const bool amx = kernel == Kernel::kAmx;
  const int groups = (M + 31) / 32;
  const int nb_max = block_size(N, kMaxNB, 32);
  const int kb_max = block_size(K, amx ? kMaxKBAmx : kMaxKBAvx512Bf16, 32);
  const bool parallel = int64_t{2} * M * N * K >= kParallelFlops && num_threads() > 1 && gemm::pool_is_prompt();

  static thread_local gemm::Workspace workspace;
  const size_t a_elems = size_t(groups) * 32 * kb_max, b_elems = size_t(nb_max) * kb_max;
  bf16* const packed_a = static_cast<bf16*>(workspace.get(sizeof(bf16) * (a_elems + b_elems)));
  bf16* const packed_b = packed_a + a_elems;

  const int want_tiles = parallel ? num_threads() * kTilesPerThread : 1;
  const int tile_groups = std::min(groups, kMaxTileGroups);
  const int row_tiles = (groups + tile_groups - 1) / tile_groups;

  for (int p0 = 0; p0 < K; p0 += kb_max) {
    const int kb = std::min(kb_max, K - p0), Kp = round_up(kb, 32);
    for (int j0 = 0; j0 < N; j0 += nb_max) {
      const int nb = std::min(nb_max, N - j0);
      const int slivers = round_up((nb + 15) / 16, 2), pairs = slivers / 2;
      // Pack items: the A panel serves every column block of this depth (AMX: one group per item, VDPBF16PS:
      // the slivers of kPackGroups groups), then kPackSlivers slivers of B per item.
      const int a_per_item = amx ? 1 : kPackGroups;
      const int a_items = j0 == 0 ? (groups + a_per_item - 1) / a_per_item : 0;
      const int b_items = (slivers + kPackSlivers - 1) / kPackSlivers;
      for_each_claimed(a_items + b_items, parallel, [&](int item) {
        if (item < a_items) {
          const int g = item * a_per_item, row = g * 32;
          const float* src = transA ? A + int64_t(p0) * lda + row : A + int64_t(row) * lda + p0;
          bf16* out = packed_a + size_t(g) * 32 * Kp;
          if (amx)
            gemm::bf16k::pack_a_group(src, transA, lda, std::min(32, M - row), kb, Kp, out);
          else
            gemm::bf16k::pack_slivers(src, !transA, lda, M - row, kb, Kp, 2 * std::min(a_per_item, groups - g), out);
        } else {
          const int s = (item - a_items) * kPackSlivers, col = j0 + s * 16;
          const TB* src = transB ? B + int64_t(col) * ldb + p0 : B + int64_t(p0) * ldb + col;
          gemm::bf16k::pack_slivers(src, transB, ldb, j0 + nb - col, kb, Kp, std::min(kPackSlivers, slivers - s),
                                    packed_b + size_t(s) * 16 * Kp);
        }
      });

      int tile_pairs = std::min(pairs, kMaxTilePairs);
      if (row_tiles * ((pairs + tile_pairs - 1) / tile_pairs) < want_tiles) {
        const int want_col_tiles = (want_tiles + row_tiles - 1) / row_tiles;
        tile_pairs = std::max(1, (pairs + want_col_tiles - 1) / want_col_tiles);
      }
      const int col_tiles = (pairs + tile_pairs - 1) / tile_pairs;
      const float beta_block = p0 == 0 ? beta : 1.0f;
      for_each_claimed(row_tiles * col_tiles, parallel, [&](int t) {
        const int g0 = (t % row_tiles) * tile_groups, g1 = std::min(groups, g0 + tile_groups);
        const int q0 = (t / row_tiles) * tile_pairs, q1 = std::min(pairs, q0 + tile_pairs);
        if (amx) gemm::bf16k::amx_configure();
        for (int g = g0; g < g1; ++g) {
          const int m = std::min(32, M - g * 32);
          const bf16* a = packed_a + size_t(g) * 32 * Kp;
          for (int q = q0; q < q1; ++q) {
            const bf16* b = packed_b + size_t(q) * 32 * Kp;
            float* c = C + int64_t(g) * 32 * ldc + j0 + q * 32;
            const int n = std::min(32, nb - q * 32);
            if (amx) {
              alignas(64) float acc[32 * 32];
              gemm::bf16k::block_amx(Kp, a, b, acc);
              gemm::bf16k::store_block(acc, c, ldc, m, n, alpha, beta_block);
            } else {
              gemm::bf16k::block_avx512bf16(Kp, a, b, c, ldc, m, n, alpha, beta_block);
            }
          }
        }
        if (amx) gemm::bf16k::amx_release();
      });
    }
  }
}
#endif

template <typename TB>
void bgemm_any(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const TB* B,
               int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    gemm::scale_c(M, N, beta, C, ldc);
    return;
  }
  const Kernel kernel = g_kernel.load(std::memory_order_relaxed);
#ifdef DNO_BGEMM_X86
  if (kernel != Kernel::kEmulated)
    return bgemm_packed(kernel, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
  bgemm_emulated(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

void bgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  bgemm_any(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void bgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const bf16* B,
           int ldb, float beta, float* C, int ldc) {
  bgemm_any(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {
std::atomic<Precision> g_precision{Precision::kFp32};
}  // namespace

Precision gemm_precision() { return g_precision.load(std::memory_order_relaxed); }

PrecisionScope::PrecisionScope(Precision p) : saved_(g_precision.exchange(p)) {}

PrecisionScope::~PrecisionScope() { g_precision.store(saved_); }

const char* bgemm_kernel_name() { return kernel_name(g_kernel.load()); }

bool bgemm_has_hardware() { return usable_kernels().front() != Kernel::kEmulated; }

void to_bf16(const float* x, bf16* out, int64_t n) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = float_to_bf16(x[i]);
  });
}

bool bgemm_use_kernel(const char* name) {
  for (Kernel k : usable_kernels())
    if (std::strcmp(kernel_name(k), name) == 0) {
      g_kernel.store(k);
      return true;
    }
  return false;
}

}  // namespace dno
