// Single-precision GEMM, row-major, the one matrix kernel every layer calls.
#pragma once

namespace dno {

// C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C, all row-major.
// op(A) is A (M,K) with leading dimension lda, or A^T when transA (A stored (K,M), lda >= M);
// op(B) likewise (B stored (K,N), or (N,K) when transB). beta = 0 ignores C's old contents (NaN-safe),
// beta = 1 accumulates (backward passes add into gradients). Runs on the thread pool.
void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

// Which microkernel sgemm dispatches to on this CPU: "avx512", "avx2" or "portable".
const char* sgemm_kernel_name();

}  // namespace dno
