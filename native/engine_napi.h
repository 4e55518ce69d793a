// N-API surface of the model engine: the decoder (Model, Model64), its parameter layout, AdamW,
// gradient-norm helpers and the kernels' finite-difference self-check.
#pragma once
#include <napi.h>

namespace dno {

// Adds paramLayout, Model, Model64, adamw, sumSquares, scale and kernelGradchecks to the exports.
void register_engine(Napi::Env env, Napi::Object exports);

}  // namespace dno
