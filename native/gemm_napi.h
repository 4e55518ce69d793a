// N-API surface of the GEMM and the thread pool.
#pragma once
#include <napi.h>

namespace dno {

// Adds sgemm, sgemmKernel, sgemmUseKernel, numThreads and setNumThreads to the addon's exports.
void register_gemm(Napi::Env env, Napi::Object exports);

}  // namespace dno
