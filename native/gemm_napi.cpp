#include "gemm_napi.h"

#include <cstdint>
#include <string>

#include "gemm.h"
#include "gemm_internal.h"
#include "threadpool.h"

namespace dno {
namespace {

// Elements a row-major (rows, cols) matrix with leading dimension ld spans; -1 when ld is too small.
int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  if (ld < cols || ld < 1) return -1;
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

bool check_matrix(Napi::Env env, const Napi::Float32Array& m, const char* name, int64_t rows, int64_t cols,
                  int64_t ld) {
  const int64_t need = span(rows, cols, ld);
  if (need < 0) {
    Napi::RangeError::New(env, std::string("sgemm: leading dimension of ") + name + " (" +
                                   std::to_string(ld) + ") is below its row length " + std::to_string(cols))
        .ThrowAsJavaScriptException();
    return false;
  }
  if (static_cast<int64_t>(m.ElementLength()) < need) {
    Napi::RangeError::New(env, std::string("sgemm: ") + name + " holds " + std::to_string(m.ElementLength()) +
                                   " floats, needs " + std::to_string(need))
        .ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha op(A) op(B) + beta C.
Napi::Value sgemm_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 13 || !info[6].IsTypedArray() || !info[8].IsTypedArray() || !info[11].IsTypedArray()) {
    Napi::TypeError::New(env, "sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) expects "
                              "13 arguments with Float32Array A, B, C")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  const int64_t M = info[2].ToNumber().Int64Value(), N = info[3].ToNumber().Int64Value();
  const int64_t K = info[4].ToNumber().Int64Value();
  const float alpha = info[5].ToNumber().FloatValue(), beta = info[10].ToNumber().FloatValue();
  const int64_t lda = info[7].ToNumber().Int64Value(), ldb = info[9].ToNumber().Int64Value();
  const int64_t ldc = info[12].ToNumber().Int64Value();
  if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    Napi::RangeError::New(env, "sgemm: M, N, K must be integers in [0, 2^31)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const auto A = info[6].As<Napi::Float32Array>(), B = info[8].As<Napi::Float32Array>();
  auto C = info[11].As<Napi::Float32Array>();
  if (A.TypedArrayType() != napi_float32_array || B.TypedArrayType() != napi_float32_array ||
      C.TypedArrayType() != napi_float32_array) {
    Napi::TypeError::New(env, "sgemm: A, B and C must be Float32Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!check_matrix(env, A, "A", ta ? K : M, ta ? M : K, lda) ||
      !check_matrix(env, B, "B", tb ? N : K, tb ? K : N, ldb) || !check_matrix(env, C, "C", M, N, ldc))
    return env.Undefined();
  sgemm(ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A.Data(),
        static_cast<int>(lda), B.Data(), static_cast<int>(ldb), beta, C.Data(), static_cast<int>(ldc));
  return env.Undefined();
}

Napi::Value sgemm_kernel_js(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), sgemm_kernel_name());
}

// sgemmUseKernel(name): forces a microkernel (tests, benchmarks); false when this CPU cannot run it.
Napi::Value sgemm_use_kernel_js(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "sgemmUseKernel(name) expects a kernel name").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), gemm::use_kernel(info[0].As<Napi::String>().Utf8Value().c_str()));
}

Napi::Value num_threads_js(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value set_num_threads_js(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1) {
    Napi::RangeError::New(info.Env(), "setNumThreads(n) expects an integer n >= 1").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, sgemm_js, "sgemm"));
  exports.Set("sgemmKernel", Napi::Function::New(env, sgemm_kernel_js, "sgemmKernel"));
  exports.Set("sgemmUseKernel", Napi::Function::New(env, sgemm_use_kernel_js, "sgemmUseKernel"));
  exports.Set("numThreads", Napi::Function::New(env, num_threads_js, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads_js, "setNumThreads"));
}

}  // namespace dno
