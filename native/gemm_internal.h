// Test and benchmark hooks into sgemm (not for kernels).
#pragma once

namespace dno::gemm {

// Makes sgemm use the named microkernel ("avx512", "avx2" or "portable") from now on. Returns false,
// changing nothing, when this CPU cannot run it.
bool use_kernel(const char* name);

}  // namespace dno::gemm
