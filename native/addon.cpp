// The dno_native addon: each module adds its functions to the exports.
#include <napi.h>

#include "engine_napi.h"
#include "gemm_napi.h"
#include "generate.h"
#include "lora_napi.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  dno::register_gemm(env, exports);
  dno::register_engine(env, exports);
  dno::register_generate(env, exports);
  dno::register_lora(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(dno_native, init)
