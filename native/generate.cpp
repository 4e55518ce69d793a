// Batched sampling with a KV cache. P prompts x K samples: each prompt is prefilled once (its keys and
// values cached once, shared by its K samples), then every step feeds one token per live sample through
// the decoder as one batch of rows (one GEMM per weight matrix), and each sample draws its next token
// with its own RNG. A sample's tokens depend only on its seed, its prompt and the weights, never on which
// other prompts share the batch: rows never mix in any kernel, and each sample owns its RNG stream.
#include "generate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <vector>

#include "kernels.h"
#include "lora_napi.h"
#include "model.h"
#include "napi_util.h"
#include "threadpool.h"

namespace dno {
namespace {

// splitmix64: one 64-bit state per sample, one uniform per drawn token.
struct SampleRng {
  uint64_t state;
  double uniform() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
  }
};

struct SamplingOptions {
  float temperature = 1;  // <= 0: greedy
  int top_k = 0;          // 0: all tokens
  float top_p = 1;        // 1: no nucleus cut
  int max_new = 0;
  std::vector<int32_t> eos;
};

// Prompt rows per prefill forward pass (bounds activation memory).
constexpr int kPrefillRows = 512;

enum Finish : int32_t { kRunning = 0, kEos = 1, kLength = 2, kStopped = 3 };

// One row of a forward pass: the token at `pos` of prompt `prompt`'s context; `sample` < 0 for a prompt
// (prefill) row, else the sample whose own cache holds positions >= the prompt length.
struct Row {
  int32_t token, pos, prompt, sample;
};

// Draws a token from logits (V) and returns it; `model_logp` gets log p(token) under the model itself
// (temperature 1, no top-k / top-p), the sequence log-prob DNO's objectives use. `order` is scratch (V).
int32_t sample_token(const float* logits, int V, const SamplingOptions& o, SampleRng& rng, std::vector<int32_t>& order,
                     std::vector<double>& prob, double* model_logp) {
  float mx = logits[0];
  int32_t best = 0;
  for (int v = 1; v < V; ++v)
    if (logits[v] > mx) mx = logits[v], best = v;
  double z = 0;
  for (int v = 0; v < V; ++v) z += std::exp(double(logits[v]) - mx);
  const double lse = mx + std::log(z);
  int32_t token = best;
  if (o.temperature > 0) {
    const double u = rng.uniform();
    // Candidates by descending logit, ties by ascending id: a total order, so the draw is reproducible.
    const auto before = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    order.resize(V);
    std::iota(order.begin(), order.end(), 0);
    int n = V;
    if (o.top_k > 0 && o.top_k < V) {
      n = o.top_k;
      std::nth_element(order.begin(), order.begin() + (n - 1), order.end(), before);
    }
    const double inv_t = 1.0 / o.temperature;
    const auto weight = [&](int32_t v) { return std::exp((double(logits[v]) - mx) * inv_t); };
    if (o.top_p < 1) {
      // The nucleus: the shortest prefix of the candidates in descending order holding top_p of their
      // mass. Only a growing head of the order is sorted: usually a few dozen tokens of the vocabulary.
      double all = 0;
      for (int i = 0; i < n; ++i) all += weight(order[i]);
      const double need = o.top_p * all;
      for (int head = std::min(n, 64);; head = std::min(n, head * 4)) {
        if (head < n) std::nth_element(order.begin(), order.begin() + head, order.begin() + n, before);
        std::sort(order.begin(), order.begin() + head, before);
        double kept = 0;
        int m = 0;
        while (m < head && kept < need) kept += weight(order[m++]);
        if (kept >= need || head == n) {
          n = std::max(m, 1);
          break;
        }
      }
    }
    prob.resize(n);
    double total = 0;
    for (int i = 0; i < n; ++i) total += (prob[i] = weight(order[i]));
    double target = u * total;
    token = order[n - 1];
    for (int i = 0; i < n; ++i) {
      target -= prob[i];
      if (target < 0) {
        token = order[i];
        break;
      }
    }
  }
  *model_logp = double(logits[token]) - lse;
  return token;
}

class Generator {
 public:
  Generator(const LlamaConfig& c, const float* params) : c_(c), w_(bind_weights(c, const_cast<float*>(params))) {}

  // Samples with an adapter (native/lora.h layout) applied unmerged.
  void set_lora(const LoraSpec& spec, const float* params) {
    lora_ = LoraAdapter<float>{spec, bind_lora(c_, spec, const_cast<float*>(params)), {}};
  }

  // Prefills every prompt and draws each sample's first token. Outputs (JS-owned, kept by the caller):
  // tokens (S, max_new), logp (S, max_new): each token's model log-prob, len (S), finish (S), and, when
  // not null, logits (S, max_new, V): the logits each token was drawn from. Sample s = p * K + k.
  void start(const int32_t* prompt_tokens, const int32_t* prompt_starts, int P, int K, const uint32_t* seeds,
             SamplingOptions o, int32_t* tokens, float* logp, int32_t* len, int32_t* finish, float* logits) {
    if (o.max_new <= 0) throw std::invalid_argument("maxNewTokens must be positive");
    P_ = P, K_ = K, S_ = P * K, o_ = std::move(o);
    tokens_ = tokens, logp_ = logp, len_ = len, finish_ = finish, logits_out_ = logits;
    prompt_start_.assign(prompt_starts, prompt_starts + P + 1);
    const int n_prompt = prompt_start_[P];
    for (int p = 0; p < P; ++p)
      if (prompt_start_[p + 1] <= prompt_start_[p]) throw std::invalid_argument("every prompt needs a token");
    rng_.resize(S_);
    for (int s = 0; s < S_; ++s) rng_[s].state = seeds[s];
    const int64_t kvd = c_.kv_dim();
    prompt_kv_.assign(size_t(c_.layers) * 2 * n_prompt * kvd, 0.f);
    sample_kv_.assign(size_t(c_.layers) * 2 * S_ * o_.max_new * kvd, 0.f);
    int max_len = 0;
    for (int p = 0; p < P; ++p) max_len = std::max(max_len, prompt_start_[p + 1] - prompt_start_[p]);
    ensure_rope(max_len + o_.max_new);
    std::fill(len_, len_ + S_, 0);
    std::fill(finish_, finish_ + S_, int32_t(kRunning));

    // Prefill in chunks of rows, in order: a chunk's rows attend to the keys and values that earlier
    // chunks cached, so activation memory stays bounded however long the prompts are.
    const int V = c_.vocab;
    prompt_logits_.resize(size_t(P) * V);
    for (int r0 = 0; r0 < n_prompt; r0 += kPrefillRows) {
      const int r1 = std::min(n_prompt, r0 + kPrefillRows);
      std::vector<Row> rows;
      std::vector<int> last, last_prompt;
      for (int p = 0, i = r0; i < r1; ++i) {
        while (prompt_start_[p + 1] <= i) ++p;
        rows.push_back(Row{prompt_tokens[i], i - prompt_start_[p], p, -1});
        if (i == prompt_start_[p + 1] - 1) last.push_back(i - r0), last_prompt.push_back(p);
      }
      forward(rows, last);
      for (size_t m = 0; m < last.size(); ++m)
        std::memcpy(prompt_logits_.data() + int64_t(last_prompt[m]) * V, logits_.data() + int64_t(m) * V,
                    sizeof(float) * V);
    }
    // Each sample draws its first token from its prompt's last-row logits.
    draw(S_, [&](int s) { return prompt_logits_.data() + int64_t(s / K_) * V; }, [](int s) { return s; });
  }

  // Runs up to `steps` decode steps; returns the number of samples still running.
  int step(int steps) {
    for (int t = 0; t < steps; ++t) {
      std::vector<Row> rows;
      std::vector<int> who;
      for (int s = 0; s < S_; ++s) {
        if (finish_[s] != kRunning) continue;
        const int p = s / K_, L = prompt_start_[p + 1] - prompt_start_[p], n = len_[s];
        rows.push_back(Row{tokens_[int64_t(s) * o_.max_new + n - 1], L + n - 1, p, s});
        who.push_back(s);
      }
      if (rows.empty()) return 0;
      std::vector<int> all(rows.size());
      std::iota(all.begin(), all.end(), 0);
      forward(rows, all);
      draw(int(who.size()), [&](int i) { return logits_.data() + int64_t(i) * c_.vocab; }, [&](int i) { return who[i]; });
    }
    return live();
  }

  void finish(int s) {
    if (s < 0 || s >= S_) throw std::out_of_range("sample index out of range");
    if (finish_[s] == kRunning) finish_[s] = kStopped;
  }

 private:
  int live() const {
    int n = 0;
    for (int s = 0; s < S_; ++s) n += finish_[s] == kRunning;
    return n;
  }

  void ensure_rope(int max_len) {
    if (int(cos_.size()) >= max_len * (c_.head_dim / 2)) return;
    rope_tables(c_, max_len, cos_, sin_);
  }

  // Where position j of row r's context keeps its key (kv = 0) or value (kv = 1) in layer l.
  float* kv_at(int l, int kv, const Row& r, int j) {
    const int64_t kvd = c_.kv_dim();
    const int L = prompt_start_[r.prompt + 1] - prompt_start_[r.prompt];
    if (j < L) {
      const int64_t n_prompt = prompt_start_[P_];
      return prompt_kv_.data() + ((int64_t(l) * 2 + kv) * n_prompt + prompt_start_[r.prompt] + j) * kvd;
    }
    const int64_t per = int64_t(S_) * o_.max_new;
    return sample_kv_.data() + ((int64_t(l) * 2 + kv) * per + int64_t(r.sample) * o_.max_new + (j - L)) * kvd;
  }

  // Runs rows through the decoder, caching each row's keys and values; logits_ gets (out.size(), V), the
  // logits of rows out[i].
  void forward(const std::vector<Row>& rows, const std::vector<int>& out) {
    const int N = int(rows.size()), C = c_.hidden, I = c_.intermediate, QKV = c_.qkv_dim(), QD = c_.q_dim();
    const int H = c_.heads, KV = c_.kv_heads, D = c_.head_dim, V = c_.vocab, rep = H / KV;
    x_.resize(size_t(N) * C), xn_.resize(size_t(N) * C), rstd_.resize(N), qkv_.resize(size_t(N) * QKV);
    att_.resize(size_t(N) * QD), gu_.resize(size_t(N) * 2 * I), act_.resize(size_t(N) * I);
    std::vector<int32_t> tok(N), pos(N);
    for (int i = 0; i < N; ++i) tok[i] = rows[i].token, pos[i] = rows[i].pos;
    embedding_forward(x_.data(), tok.data(), w_.embed, N, C);
    const float scale = 1.0f / std::sqrt(float(D));
    const int r = lora_ ? lora_->spec.rank : 0;
    const float ls = lora_ ? float(lora_->spec.scale) : 0.f;
    if (lora_) lora_u_.resize(size_t(N) * 3 * r);
    for (int l = 0; l < c_.layers; ++l) {
      const LayerWeights<float>& w = w_.layers[l];
      const LoraLayer<float>* lw = lora_ ? &lora_->w[size_t(l)] : nullptr;
      rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.attn_norm, N, C, c_.rms_eps);
      gemm<float>(false, true, N, QKV, C, 1.f, xn_.data(), C, w.wqkv, C, 0.f, qkv_.data(), QKV);
      if (w.bqkv) bias_forward(qkv_.data(), w.bqkv, N, QKV);
      if (lw) lora_forward(qkv_.data(), QKV, lora_u_.data(), xn_.data(), N, (*lw)[kGroupQkv], r, ls);
      rope_apply(qkv_.data(), N, QKV, 0, H + KV, D, pos.data(), cos_.data(), sin_.data(), false);
      for (int i = 0; i < N; ++i) {
        const float* q = qkv_.data() + int64_t(i) * QKV;
        std::memcpy(kv_at(l, 0, rows[i], rows[i].pos), q + QD, sizeof(float) * KV * D);
        std::memcpy(kv_at(l, 1, rows[i], rows[i].pos), q + QD + KV * D, sizeof(float) * KV * D);
      }
      // Causal attention of each (row, head) over its context: the prompt's cache, then the sample's.
      parallel_for(int64_t(N) * H, 4, [&](int64_t b, int64_t e) {
        std::vector<float> score;
        for (int64_t task = b; task < e; ++task) {
          const int i = int(task / H), h = int(task % H), g = h / rep;
          const Row& r = rows[i];
          const float* q = qkv_.data() + int64_t(i) * QKV + int64_t(h) * D;
          score.resize(r.pos + 1);
          float mx = -INFINITY;
          for (int j = 0; j <= r.pos; ++j) {
            if (c_.sliding_window > 0 && r.pos - j >= c_.sliding_window) {
              score[j] = -INFINITY;
              continue;
            }
            const float* k = kv_at(l, 0, r, j) + int64_t(g) * D;
            float dot = 0;
            for (int d = 0; d < D; ++d) dot += q[d] * k[d];
            score[j] = dot * scale;
            mx = std::max(mx, score[j]);
          }
          float sum = 0;
          for (int j = 0; j <= r.pos; ++j) sum += (score[j] = std::exp(score[j] - mx));
          const float inv = 1.0f / sum;
          float* o = att_.data() + int64_t(i) * QD + int64_t(h) * D;
          std::fill(o, o + D, 0.f);
          for (int j = 0; j <= r.pos; ++j) {
            if (score[j] == 0) continue;
            const float* v = kv_at(l, 1, r, j) + int64_t(g) * D;
            const float p = score[j] * inv;
            for (int d = 0; d < D; ++d) o[d] += p * v[d];
          }
        }
      });
      gemm<float>(false, true, N, C, QD, 1.f, att_.data(), QD, w.wo, QD, 1.f, x_.data(), C);
      if (w.bo) bias_forward(x_.data(), w.bo, N, C);
      if (lw) lora_forward(x_.data(), C, lora_u_.data(), att_.data(), N, (*lw)[kGroupO], r, ls);
      rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.mlp_norm, N, C, c_.rms_eps);
      gemm<float>(false, true, N, 2 * I, C, 1.f, xn_.data(), C, w.wgate_up, C, 0.f, gu_.data(), 2 * I);
      if (lw) lora_forward(gu_.data(), 2 * I, lora_u_.data(), xn_.data(), N, (*lw)[kGroupGateUp], r, ls);
      swiglu_forward(act_.data(), gu_.data(), N, I);
      gemm<float>(false, true, N, C, I, 1.f, act_.data(), I, w.wdown, I, 1.f, x_.data(), C);
      if (lw) lora_forward(x_.data(), C, lora_u_.data(), act_.data(), N, (*lw)[kGroupDown], r, ls);
    }
    const int M = int(out.size());
    hidden_.resize(size_t(M) * C);
    for (int m = 0; m < M; ++m) std::memcpy(hidden_.data() + int64_t(m) * C, x_.data() + int64_t(out[m]) * C, sizeof(float) * C);
    rmsnorm_forward(xn_.data(), rstd_.data(), hidden_.data(), w_.final_norm, M, C, c_.rms_eps);
    logits_.resize(size_t(M) * V);
    gemm<float>(false, true, M, V, C, 1.f, xn_.data(), C, w_.lm_head, C, 0.f, logits_.data(), V);
  }

  // Sample s_of(i) draws its next token from logits_of(i), for i < n.
  template <typename LogitsOf, typename SampleOf>
  void draw(int n, LogitsOf logits_of, SampleOf s_of) {
    const int V = c_.vocab;
    parallel_for(n, 8, [&](int64_t b, int64_t e) {
      std::vector<int32_t> order;
      std::vector<double> prob;
      for (int64_t i = b; i < e; ++i) {
        const int s = s_of(int(i));
        const float* logits = logits_of(int(i));
        double lp = 0;
        const int32_t token = sample_token(logits, V, o_, rng_[s], order, prob, &lp);
        const int64_t at = int64_t(s) * o_.max_new + len_[s];
        if (logits_out_) std::memcpy(logits_out_ + at * V, logits, sizeof(float) * V);
        if (std::find(o_.eos.begin(), o_.eos.end(), token) != o_.eos.end()) {
          finish_[s] = kEos;
          continue;
        }
        tokens_[at] = token;
        logp_[at] = float(lp);
        if (++len_[s] == o_.max_new) finish_[s] = kLength;
      }
    });
  }

  LlamaConfig c_;
  LlamaWeights<float> w_;
  std::optional<LoraAdapter<float>> lora_;
  std::vector<float> lora_u_;
  int P_ = 0, K_ = 0, S_ = 0;
  SamplingOptions o_;
  std::vector<int> prompt_start_;
  std::vector<SampleRng> rng_;
  std::vector<float> prompt_kv_, sample_kv_, cos_, sin_;
  std::vector<float> x_, xn_, rstd_, qkv_, att_, gu_, act_, hidden_, logits_, prompt_logits_;
  int32_t *tokens_ = nullptr, *len_ = nullptr, *finish_ = nullptr;
  float *logp_ = nullptr, *logits_out_ = nullptr;
};

// new Sampler(config, params, lora?: { spec, params }); start(...), step(n), finish(sample): see
// src/engine/sampler.ts.
class SamplerWrap : public Napi::ObjectWrap<SamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sampler",
                       {InstanceMethod("start", &SamplerWrap::Start), InstanceMethod("step", &SamplerWrap::Step),
                        InstanceMethod("finish", &SamplerWrap::Finish)});
  }

  explicit SamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SamplerWrap>(info) {
    config_ = config_from_js(info[0]);
    const float* params = array_arg<float>(info, 1, "params", size_t(param_count(config_)));
    refs_.push_back(Napi::Persistent(info[1].As<Napi::Object>()));
    gen_ = std::make_unique<Generator>(config_, params);
    if (info.Length() > 2 && info[2].IsObject()) {
      const Napi::Object lora = info[2].As<Napi::Object>();
      const LoraSpec spec = lora_spec_from_js(lora.Get("spec"));
      const size_t n = size_t(guarded(info.Env(), [&] { return lora_param_count(config_, spec); }));
      const Napi::Value p = lora.Get("params");
      if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          p.As<Napi::TypedArray>().ElementLength() < n)
        throw Napi::TypeError::New(info.Env(), "lora.params must be a Float32Array of the adapter's size");
      lora_ref_ = Napi::Persistent(p.As<Napi::Object>());
      gen_->set_lora(spec, p.As<Napi::Float32Array>().Data());
    }
  }

 private:
  // start(promptTokens: Int32Array, promptStarts: Int32Array(P+1), K, seeds: Uint32Array(P*K),
  //       options: { temperature, topK, topP, maxNewTokens, eosTokenIds: Int32Array },
  //       tokens: Int32Array(S*maxNew), logp: Float32Array(S*maxNew), len: Int32Array(S),
  //       finish: Int32Array(S), logits: Float32Array(S*maxNew*V) | null)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    size_t n_starts = 0;
    const int32_t* starts = array_arg<int32_t>(info, 1, "promptStarts", 2, &n_starts);
    const int P = int(n_starts) - 1;
    const int32_t* prompt = array_arg<int32_t>(info, 0, "promptTokens", size_t(starts[P]));
    for (int i = 0; i < starts[P]; ++i)
      if (prompt[i] < 0 || prompt[i] >= config_.vocab) throw Napi::RangeError::New(env, "prompt token out of vocabulary");
    const int K = info[2].As<Napi::Number>().Int32Value();
    if (K <= 0) throw Napi::RangeError::New(env, "samplesPerPrompt must be positive");
    const int S = P * K;
    const Napi::Value sv = info[3];
    if (!sv.IsTypedArray() || sv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        sv.As<Napi::TypedArray>().ElementLength() < size_t(S))
      throw Napi::TypeError::New(env, "seeds must be a Uint32Array of P*K");
    const uint32_t* seeds = sv.As<Napi::Uint32Array>().Data();
    const Napi::Object opts = info[4].As<Napi::Object>();
    SamplingOptions o;
    o.temperature = opts.Get("temperature").As<Napi::Number>().FloatValue();
    o.top_k = opts.Get("topK").As<Napi::Number>().Int32Value();
    o.top_p = opts.Get("topP").As<Napi::Number>().FloatValue();
    o.max_new = opts.Get("maxNewTokens").As<Napi::Number>().Int32Value();
    const Napi::Int32Array eos = opts.Get("eosTokenIds").As<Napi::Int32Array>();
    o.eos.assign(eos.Data(), eos.Data() + eos.ElementLength());
    const size_t cells = size_t(S) * size_t(std::max(o.max_new, 1));
    int32_t* tokens = array_arg<int32_t>(info, 5, "tokens", cells);
    float* logp = array_arg<float>(info, 6, "logp", cells);
    int32_t* len = array_arg<int32_t>(info, 7, "len", size_t(S));
    int32_t* finish = array_arg<int32_t>(info, 8, "finish", size_t(S));
    float* logits = nullptr;
    if (!info[9].IsNull() && !info[9].IsUndefined()) logits = array_arg<float>(info, 9, "logits", cells * config_.vocab);
    refs_.resize(1);
    for (int i : {5, 6, 7, 8, 9})
      if (info[i].IsObject()) refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    guarded(env, [&] { gen_->start(prompt, starts, P, K, seeds, std::move(o), tokens, logp, len, finish, logits); });
    return env.Undefined();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    const int steps = info[0].As<Napi::Number>().Int32Value();
    return Napi::Number::New(info.Env(), guarded(info.Env(), [&] { return gen_->step(steps); }));
  }

  Napi::Value Finish(const Napi::CallbackInfo& info) {
    const int s = info[0].As<Napi::Number>().Int32Value();
    guarded(info.Env(), [&] { gen_->finish(s); });
    return info.Env().Undefined();
  }

  LlamaConfig config_;
  std::unique_ptr<Generator> gen_;
  std::vector<Napi::ObjectReference> refs_;
  Napi::ObjectReference lora_ref_;
};

}  // namespace

void register_generate(Napi::Env env, Napi::Object exports) { exports.Set("Sampler", SamplerWrap::Define(env)); }

}  // namespace dno
