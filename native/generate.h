// Batched sampling with a KV cache over the decoder's flat parameter buffer (native/model.h layout).
#pragma once
#include <napi.h>

namespace dno {

// Adds the `Sampler` class (typed in src/engine/generate.ts) to the addon's exports.
void register_generate(Napi::Env env, Napi::Object exports);

}  // namespace dno
