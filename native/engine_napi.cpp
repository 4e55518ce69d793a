// N-API surface of the model engine (typed in src/engine/index.ts). No policy here, only work:
// TypeScript validates inputs and owns every large buffer; kernels read and write them in place.
#include "engine_napi.h"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "gradcheck.h"
#include "kernels.h"
#include "llama.h"
#include "lora_napi.h"
#include "napi_util.h"
#include "profile.h"
#include "threadpool.h"

namespace dno {

LlamaConfig config_from_js(const Napi::Value& v) {
  const Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "config must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  auto num = [&](const Napi::Object& from, const char* key) {
    const Napi::Value x = from.Get(key);
    if (!x.IsNumber()) throw Napi::TypeError::New(env, std::string("config.") + key + " must be a number");
    return x.As<Napi::Number>().DoubleValue();
  };
  auto flag = [&](const char* key) { return o.Get(key).ToBoolean().Value(); };
  LlamaConfig c;
  c.vocab = int(num(o, "vocabSize"));
  c.hidden = int(num(o, "hiddenSize"));
  c.intermediate = int(num(o, "intermediateSize"));
  c.layers = int(num(o, "numLayers"));
  c.heads = int(num(o, "numHeads"));
  c.kv_heads = int(num(o, "numKvHeads"));
  c.head_dim = int(num(o, "headDim"));
  c.rms_eps = num(o, "rmsNormEps");
  c.rope_theta = num(o, "ropeTheta");
  const Napi::Value r = o.Get("ropeLlama3");
  if (r.IsObject()) {
    const Napi::Object ro = r.As<Napi::Object>();
    c.rope_llama3 = true;
    c.rope_factor = num(ro, "factor");
    c.rope_low_freq_factor = num(ro, "lowFreqFactor");
    c.rope_high_freq_factor = num(ro, "highFreqFactor");
    c.rope_original_max_pos = num(ro, "originalMaxPositionEmbeddings");
  }
  c.qkv_bias = flag("qkvBias");
  c.o_bias = flag("oBias");
  c.tied = flag("tieWordEmbeddings");
  c.sliding_window = int(num(o, "slidingWindow"));
  c.pad_token = int(num(o, "padTokenId"));
  if (c.vocab <= 0 || c.hidden <= 0 || c.intermediate <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 ||
      c.head_dim <= 0 || c.head_dim % 2 || c.heads % c.kv_heads)
    throw Napi::RangeError::New(env, "config: sizes must be positive, headDim even, numHeads a multiple of numKvHeads");
  return c;
}

namespace {

Napi::Value ParamLayout(const Napi::CallbackInfo& info) {
  const LlamaConfig c = config_from_js(info[0]);
  const Napi::Env env = info.Env();
  const auto layout = param_layout(c);
  Napi::Array tensors = Napi::Array::New(env, layout.size());
  for (size_t i = 0; i < layout.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", layout[i].name);
    Napi::Array shape = Napi::Array::New(env, layout[i].shape.size());
    for (size_t d = 0; d < layout[i].shape.size(); ++d) shape[uint32_t(d)] = double(layout[i].shape[d]);
    t.Set("shape", shape);
    t.Set("offset", double(layout[i].offset));
    t.Set("size", double(layout[i].size));
    tensors[uint32_t(i)] = t;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("tensors", tensors);
  out.Set("total", double(param_count(c)));
  return out;
}

// new Model(config, params, grads | null): a float32 (Model) or float64 (Model64, tests) decoder over
// JS-owned parameter and gradient buffers, which it keeps alive.
template <typename T>
class ModelWrap : public Napi::ObjectWrap<ModelWrap<T>> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name) {
    return ModelWrap::DefineClass(env, name,
                                  {ModelWrap::InstanceMethod("forward", &ModelWrap::Forward),
                                   ModelWrap::InstanceMethod("backward", &ModelWrap::Backward),
                                   ModelWrap::InstanceMethod("setPrecision", &ModelWrap::SetPrecision),
                                   ModelWrap::InstanceMethod("setRecompute", &ModelWrap::SetRecompute),
                                   ModelWrap::InstanceMethod("setHeadMemory", &ModelWrap::SetHeadMemory),
                                   ModelWrap::InstanceMethod("setLora", &ModelWrap::SetLora)});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap<T>>(info) {
    const LlamaConfig c = config_from_js(info[0]);
    const size_t n = size_t(param_count(c));
    T* params = array_arg<T>(info, 1, "params", n);
    params_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
    T* grads = nullptr;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      grads = array_arg<T>(info, 2, "grads", n);
      grads_ref_ = Napi::Persistent(info[2].As<Napi::Object>());
    }
    model_ = std::make_unique<Llama<T>>(c, params, grads);
  }

 private:
  // forward(tokens: Int32Array(N), starts: Int32Array(S+1), targets: Int32Array(N), logp: Float(N),
  //         keep: boolean, lastLogits: Float(S*V) | null)
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    size_t n_starts = 0;
    const int32_t* starts = array_arg<int32_t>(info, 1, "starts", 1, &n_starts);
    const int S = int(n_starts) - 1;
    if (starts[0] != 0) throw Napi::RangeError::New(env, "starts[0] must be 0");
    const size_t N = size_t(starts[S]);
    const int32_t* tokens = array_arg<int32_t>(info, 0, "tokens", N);
    const int32_t* targets = array_arg<int32_t>(info, 2, "targets", N);
    T* logp = array_arg<T>(info, 3, "logp", N);
    const bool keep = info[4].ToBoolean().Value();
    T* last = nullptr;
    if (!info[5].IsNull() && !info[5].IsUndefined())
      last = array_arg<T>(info, 5, "lastLogits", size_t(S) * model_->config().vocab);
    guarded(env, [&] { model_->forward(tokens, starts, S, targets, logp, keep, last); });
    return env.Undefined();
  }

  // backward(dlogp: Float(N)) for the last forward(keep = true)
  Napi::Value Backward(const Napi::CallbackInfo& info) {
    const T* dlogp = array_arg<T>(info, 0, "dlogp", 0);
    guarded(info.Env(), [&] { model_->backward(dlogp); });
    return info.Env().Undefined();
  }

  // setPrecision("fp32" | "bf16")
  Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
    const std::string p = info[0].ToString().Utf8Value();
    if (p != "fp32" && p != "bf16") throw Napi::RangeError::New(info.Env(), "precision must be fp32 or bf16");
    guarded(info.Env(), [&] { model_->set_precision(p == "bf16" ? Precision::kBf16 : Precision::kFp32); });
    return info.Env().Undefined();
  }

  // setRecompute(on: boolean): activation recomputation in training (Llama::set_recompute)
  Napi::Value SetRecompute(const Napi::CallbackInfo& info) {
    model_->set_recompute(info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }

  // setHeadMemory(chunkValues, cacheBytes): Llama::set_head_memory
  Napi::Value SetHeadMemory(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const int64_t chunk_values = info[0].ToNumber().Int64Value(), cache_bytes = info[1].ToNumber().Int64Value();
    if (chunk_values < 1 || cache_bytes < 0)
      throw Napi::RangeError::New(env, "setHeadMemory needs chunkValues >= 1 and cacheBytes >= 0");
    model_->set_head_memory({chunk_values, cache_bytes});
    return env.Undefined();
  }

  // setLora(spec, params, grads | null): applies an adapter (native/lora.h layout); setLora(null) removes it.
  Napi::Value SetLora(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info[0].IsNull() || info[0].IsUndefined()) {
      model_->clear_lora();
      lora_refs_.clear();
      return env.Undefined();
    }
    const LoraSpec spec = lora_spec_from_js(info[0]);
    const size_t n = size_t(guarded(env, [&] { return lora_param_count(model_->config(), spec); }));
    T* params = array_arg<T>(info, 1, "lora params", n);
    T* grads = info[2].IsNull() || info[2].IsUndefined() ? nullptr : array_arg<T>(info, 2, "lora grads", n);
    lora_refs_.clear();
    for (size_t i : {1, 2})
      if (info[i].IsObject()) lora_refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    model_->set_lora(spec, params, grads);
    return env.Undefined();
  }

  std::unique_ptr<Llama<T>> model_;
  Napi::ObjectReference params_ref_, grads_ref_;
  std::vector<Napi::ObjectReference> lora_refs_;
};

// adamw(params, grads, m, v, offset, length, lr, beta1, beta2, eps, weightDecay, step)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  const size_t offset = size_t(info[4].As<Napi::Number>().Int64Value());
  const size_t length = size_t(info[5].As<Napi::Number>().Int64Value());
  float* p = array_arg<float>(info, 0, "params", offset + length);
  const float* g = array_arg<float>(info, 1, "grads", offset + length);
  float* m = array_arg<float>(info, 2, "m", offset + length);
  float* v = array_arg<float>(info, 3, "v", offset + length);
  auto f = [&](size_t i) { return info[i].As<Napi::Number>().DoubleValue(); };
  const double beta1 = f(7), beta2 = f(8), step = f(11);
  adamw_update(p + offset, g + offset, m + offset, v + offset, int64_t(length), float(f(6)), float(beta1),
               float(beta2), float(f(9)), float(f(10)), 1.0 - std::pow(beta1, step), 1.0 - std::pow(beta2, step));
  return info.Env().Undefined();
}

// sumSquares(x: Float32Array): double
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  size_t n = 0;
  const float* x = array_arg<float>(info, 0, "x", 0, &n);
  return Napi::Number::New(info.Env(), sum_squares(x, int64_t(n)));
}

// scale(x: Float32Array, s)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  size_t n = 0;
  float* x = array_arg<float>(info, 0, "x", 0, &n);
  scale_inplace(x, int64_t(n), float(info[1].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}

// kernelProfile(): seconds per phase of Model.forward/backward since the last call, then resets.
Napi::Value KernelProfile(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  double* seconds = phase_seconds();
  for (int p = 0; p < kPhaseCount; ++p) {
    out.Set(phase_name(p), seconds[p]);
    seconds[p] = 0;
  }
  return out;
}

Napi::Value KernelGradchecks(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const auto results = guarded(env, [] { return kernel_gradchecks(); });
  Napi::Array out = Napi::Array::New(env, results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("kernel", results[i].kernel);
    r.Set("checked", double(results[i].checked));
    r.Set("maxAbsErr", results[i].max_abs_err);
    r.Set("maxRelErr", results[i].max_rel_err);
    out[uint32_t(i)] = r;
  }
  return out;
}

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("paramLayout", Napi::Function::New(env, ParamLayout));
  exports.Set("Model", ModelWrap<float>::Define(env, "Model"));
  exports.Set("Model64", ModelWrap<double>::Define(env, "Model64"));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("scale", Napi::Function::New(env, Scale));
  exports.Set("kernelProfile", Napi::Function::New(env, KernelProfile));
  exports.Set("kernelGradchecks", Napi::Function::New(env, KernelGradchecks));
}

}  // namespace dno
