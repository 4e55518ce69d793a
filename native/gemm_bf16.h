// bf16 GEMM with float32 accumulation: the mixed-precision counterpart of sgemm (gemm.h).
#pragma once
#include "bf16.h"

namespace dno {

// C (M,N) = alpha * op(A) @ op(B) + beta * C, with sgemm's shapes and conventions (row-major, leading
// dimensions, beta = 0 never reads C). op(A) and op(B) are rounded to bf16 (to nearest even) as they are
// packed, unless already bf16; products accumulate in float32. B is float32 or bf16.
void bgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);
void bgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const bf16* B,
           int ldb, float beta, float* C, int ldc);

// The kernel bgemm runs: "amx" (AMX tiles, TDPBF16PS), "avx512bf16" (VDPBF16PS) or "emulated" (operands
// rounded to bf16, then float32 sgemm: the same products on a CPU without bf16 instructions).
const char* bgemm_kernel_name();

// True when this CPU has bf16 dot-product instructions that bgemm uses (amx or avx512bf16).
bool bgemm_has_hardware();

// The precision of the decoder's matrix products (kernels.h gemm<float>): float32 (sgemm) or bf16 inputs
// with float32 accumulation (bgemm), as torch.autocast sets it for a region of code. A model sets it for the
// duration of its forward, backward or sampling step; kernels run one at a time, from the JS thread.
enum class Precision { kFp32, kBf16 };
Precision gemm_precision();

class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision saved_;
};

// Tests and benchmarks: makes bgemm use the named kernel from now on; false, changing nothing, when this
// CPU cannot run it.
bool bgemm_use_kernel(const char* name);

}  // namespace dno
