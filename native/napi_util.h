// Helpers for N-API entry points: the model config and typed-array arguments, checked, without copies.
#pragma once
#include <napi.h>

#include <cstdint>
#include <exception>
#include <string>

#include "model.h"

namespace dno {

// The config object of src/engine (NativeConfig): camelCase fields, validated in TypeScript.
LlamaConfig config_from_js(const Napi::Value& v);

template <typename E>
struct ArrayKind;
template <>
struct ArrayKind<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <>
struct ArrayKind<double> {
  static constexpr napi_typedarray_type type = napi_float64_array;
  static constexpr const char* name = "Float64Array";
};
template <>
struct ArrayKind<int32_t> {
  static constexpr napi_typedarray_type type = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};

// The data of argument i, a typed array of element E with at least min_len elements (a view, no copy).
// Throws a JS TypeError naming the argument otherwise.
template <typename E>
E* array_arg(const Napi::CallbackInfo& info, size_t i, const char* what, size_t min_len, size_t* len = nullptr) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != ArrayKind<E>::type)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a " + ArrayKind<E>::name);
  Napi::TypedArrayOf<E> a = v.As<Napi::TypedArrayOf<E>>();
  if (a.ElementLength() < min_len)
    throw Napi::RangeError::New(info.Env(), std::string(what) + " has " + std::to_string(a.ElementLength()) +
                                                " elements, needs " + std::to_string(min_len));
  if (len) *len = a.ElementLength();
  return a.Data();
}

// Runs fn, turning C++ exceptions (also those from pool threads) into JS errors.
template <typename F>
auto guarded(const Napi::Env& env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace dno
