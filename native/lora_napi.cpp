#include "lora_napi.h"

#include <string>

#include "napi_util.h"

namespace dno {

LoraSpec lora_spec_from_js(const Napi::Value& v) {
  const Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "lora spec must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  LoraSpec s;
  const Napi::Value rank = o.Get("rank"), scale = o.Get("scale"), targets = o.Get("targets");
  if (!rank.IsNumber() || rank.As<Napi::Number>().Int32Value() <= 0)
    throw Napi::RangeError::New(env, "lora spec: rank must be a positive integer");
  s.rank = rank.As<Napi::Number>().Int32Value();
  s.scale = scale.IsNumber() ? scale.As<Napi::Number>().DoubleValue() : 0.0;
  if (!targets.IsArray()) throw Napi::TypeError::New(env, "lora spec: targets must be an array of names");
  const Napi::Array names = targets.As<Napi::Array>();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const std::string name = names.Get(i).ToString().Utf8Value();
    int t = 0;
    while (t < kLoraTargetCount && name != lora_target_name(t)) ++t;
    if (t == kLoraTargetCount) throw Napi::RangeError::New(env, "lora spec: unknown target " + name);
    s.targets |= 1u << t;
  }
  if (s.targets == 0) throw Napi::RangeError::New(env, "lora spec: no targets");
  return s;
}

namespace {

// loraLayout(config, spec): { tensors: [{ name, shape, offset, size }], total }
Napi::Value LoraLayout(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const LlamaConfig c = config_from_js(info[0]);
  const LoraSpec s = lora_spec_from_js(info[1]);
  const auto layout = guarded(env, [&] { return lora_layout(c, s); });
  Napi::Array tensors = Napi::Array::New(env, layout.size());
  for (size_t i = 0; i < layout.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", layout[i].name);
    Napi::Array shape = Napi::Array::New(env, 2);
    shape[uint32_t(0)] = double(layout[i].shape[0]);
    shape[uint32_t(1)] = double(layout[i].shape[1]);
    t.Set("shape", shape);
    t.Set("offset", double(layout[i].offset));
    t.Set("size", double(layout[i].size));
    tensors[uint32_t(i)] = t;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("tensors", tensors);
  out.Set("total", double(lora_param_count(c, s)));
  return out;
}

}  // namespace

void register_lora(Napi::Env env, Napi::Object exports) {
  exports.Set("loraLayout", Napi::Function::New(env, LoraLayout));
}

}  // namespace dno
