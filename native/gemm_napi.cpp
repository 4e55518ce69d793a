#include "gemm_napi.h"

#include <cstdint>
#include <string>

#include "gemm.h"
#include "gemm_bf16.h"
#include "gemm_internal.h"
#include "threadpool.h"

namespace dno {
namespace {

// Elements a row-major (rows, cols) matrix with leading dimension ld spans; -1 when ld is too small.
int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  if (ld < cols || ld < 1) return -1;
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

bool check_matrix(Napi::Env env, const char* fn, const Napi::TypedArray& m, const char* name, int64_t rows,
                  int64_t cols, int64_t ld) {
  const int64_t need = span(rows, cols, ld);
  if (need < 0) {
    Napi::RangeError::New(env, std::string(fn) + ": leading dimension of " + name + " (" +
                                   std::to_string(ld) + ") is below its row length " + std::to_string(cols))
        .ThrowAsJavaScriptException();
    return false;
  }
  if (static_cast<int64_t>(m.ElementLength()) < need) {
    Napi::RangeError::New(env, std::string(fn) + ": " + name + " holds " + std::to_string(m.ElementLength()) +
                                   (m.TypedArrayType() == napi_uint16_array ? " bf16 values" : " floats") +
                                   ", needs " + std::to_string(need))
        .ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// sgemm / bgemm (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha op(A) op(B) + beta C.
// A and C are Float32Array; B is Float32Array, or for bgemm also Uint16Array (bf16 bits).
template <bool kBf16>
Napi::Value gemm_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = kBf16 ? "bgemm" : "sgemm";
  if (info.Length() != 13 || !info[6].IsTypedArray() || !info[8].IsTypedArray() || !info[11].IsTypedArray()) {
    Napi::TypeError::New(env, std::string(fn) + "(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) "
                              "expects 13 arguments with typed arrays A, B, C")
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
    Napi::RangeError::New(env, std::string(fn) + ": M, N, K must be integers in [0, 2^31)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const auto A = info[6].As<Napi::TypedArray>(), B = info[8].As<Napi::TypedArray>();
  auto C = info[11].As<Napi::TypedArray>();
  const bool b_bf16 = kBf16 && B.TypedArrayType() == napi_uint16_array;
  if (A.TypedArrayType() != napi_float32_array || C.TypedArrayType() != napi_float32_array ||
      (B.TypedArrayType() != napi_float32_array && !b_bf16)) {
    Napi::TypeError::New(env, kBf16 ? "bgemm: A and C must be Float32Array, B Float32Array or Uint16Array"
                                    : "sgemm: A, B and C must be Float32Array")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!check_matrix(env, fn, A, "A", ta ? K : M, ta ? M : K, lda) ||
      !check_matrix(env, fn, B, "B", tb ? N : K, tb ? K : N, ldb) || !check_matrix(env, fn, C, "C", M, N, ldc))
    return env.Undefined();
  const float* a = A.As<Napi::Float32Array>().Data();
  float* c = C.As<Napi::Float32Array>().Data();
  const int m = int(M), n = int(N), k = int(K), la = int(lda), lb = int(ldb), lc = int(ldc);
  if (!kBf16)
    sgemm(ta, tb, m, n, k, alpha, a, la, B.As<Napi::Float32Array>().Data(), lb, beta, c, lc);
  else if (b_bf16)
    bgemm(ta, tb, m, n, k, alpha, a, la, B.As<Napi::Uint16Array>().Data(), lb, beta, c, lc);
  else
    bgemm(ta, tb, m, n, k, alpha, a, la, B.As<Napi::Float32Array>().Data(), lb, beta, c, lc);
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

Napi::Value bgemm_kernel_js(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), bgemm_kernel_name());
}

Napi::Value bgemm_has_hardware_js(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), bgemm_has_hardware());
}

// bgemmUseKernel(name): forces a bf16 kernel (tests, benchmarks); false when this CPU cannot run it.
Napi::Value bgemm_use_kernel_js(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "bgemmUseKernel(name) expects a kernel name").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), bgemm_use_kernel(info[0].As<Napi::String>().Utf8Value().c_str()));
}

// toBf16(x: Float32Array, out: Uint16Array): out = x rounded to bf16 (nearest even), as raw bits.
Napi::Value to_bf16_js(const Napi::CallbackInfo& info) {
  if (info.Length() != 2 || !info[0].IsTypedArray() || !info[1].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array ||
      info[0].As<Napi::TypedArray>().ElementLength() != info[1].As<Napi::TypedArray>().ElementLength()) {
    Napi::TypeError::New(info.Env(), "toBf16(x, out) expects a Float32Array and a Uint16Array of one length")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const auto x = info[0].As<Napi::Float32Array>();
  to_bf16(x.Data(), info[1].As<Napi::Uint16Array>().Data(), int64_t(x.ElementLength()));
  return info.Env().Undefined();
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
  exports.Set("sgemm", Napi::Function::New(env, gemm_js<false>, "sgemm"));
  exports.Set("bgemm", Napi::Function::New(env, gemm_js<true>, "bgemm"));
  exports.Set("bgemmKernel", Napi::Function::New(env, bgemm_kernel_js, "bgemmKernel"));
  exports.Set("bgemmHasHardware", Napi::Function::New(env, bgemm_has_hardware_js, "bgemmHasHardware"));
  exports.Set("bgemmUseKernel", Napi::Function::New(env, bgemm_use_kernel_js, "bgemmUseKernel"));
  exports.Set("toBf16", Napi::Function::New(env, to_bf16_js, "toBf16"));
  exports.Set("sgemmKernel", Napi::Function::New(env, sgemm_kernel_js, "sgemmKernel"));
  exports.Set("sgemmUseKernel", Napi::Function::New(env, sgemm_use_kernel_js, "sgemmUseKernel"));
  exports.Set("numThreads", Napi::Function::New(env, num_threads_js, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads_js, "setNumThreads"));
}

}  // namespace dno
