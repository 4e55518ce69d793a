// Single-precision GEMM (first, plain version: row-blocked loops on the pool).
#include "gemm.h"

#include <algorithm>
#include <cstdint>

#include "threadpool.h"

namespace dno {

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t grain = std::max<int64_t>(1, 65536 / (static_cast<int64_t>(N) * (K + 1) + 1));
  parallel_for(M, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* c = C + i * ldc;
      for (int j = 0; j < N; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
      for (int k = 0; k < K; ++k) {
        const float a = alpha * (transA ? A[static_cast<int64_t>(k) * lda + i] : A[i * lda + k]);
        if (!transB) {
          const float* b = B + static_cast<int64_t>(k) * ldb;
          for (int j = 0; j < N; ++j) c[j] += a * b[j];
        } else {
          for (int j = 0; j < N; ++j) c[j] += a * B[static_cast<int64_t>(j) * ldb + k];
        }
      }
    }
  });
}

const char* sgemm_kernel_name() { return "portable"; }

}  // namespace dno
