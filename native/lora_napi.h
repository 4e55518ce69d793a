// N-API surface of LoRA: the adapter layout, and the spec objects Model.setLora and Sampler take.
#pragma once
#include <napi.h>

#include "lora.h"

namespace dno {

// { rank, scale, targets: string[] (PEFT target_modules names) } -> LoraSpec; a JS error otherwise.
LoraSpec lora_spec_from_js(const Napi::Value& v);

// Adds loraLayout(config, spec) to the exports.
void register_lora(Napi::Env env, Napi::Object exports);

}  // namespace dno
