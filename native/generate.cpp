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
#include <map>
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

// One sample: its RNG, its own KV cache (positions past the prompt), and where its outputs go (arrays
// of max_new tokens, log-probs and, optionally, logits x V; its length and finish state).
struct Seq {
  SampleRng rng;
  std::vector<float> kv;  // (layers, 2, max_new, kv_dim)
  int32_t* tokens;
  float* logp;
  float* logits;
  int32_t* len;
  int32_t* finish;
};

// A prompt and its K samples: the prompt's keys and values are cached once, shared by the samples.
// Each group has its own sampling options, so requests with different settings share a decode batch.
struct Group {
  std::vector<int32_t> prompt;
  std::vector<float> kv;  // (layers, 2, prompt length, kv_dim)
  SamplingOptions o;
  std::vector<Seq> seqs;
  int length() const { return int(prompt.size()); }
};

// One row of a forward pass: the token at `pos` of a group's context; `sample` < 0 for a prompt
// (prefill) row, else the sample whose own cache holds positions >= the prompt length.
struct Row {
  int32_t token, pos;
  Group* group;
  int sample;
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

// Where each sample's outputs go: arrays of (samples, max_new) cells, and per-sample len and finish.
struct Outputs {
  int32_t* tokens;
  float* logp;
  int32_t* len;
  int32_t* finish;
  float* logits;  // (samples, max_new, V) or null
};

class Generator {
 public:
  Generator(const LlamaConfig& c, const float* params) : c_(c), w_(bind_weights(c, const_cast<float*>(params))) {}

  // Samples with an adapter (native/lora.h layout) applied unmerged.
  void set_lora(const LoraSpec& spec, const float* params) {
    lora_ = LoraAdapter<float>{spec, bind_lora(c_, spec, const_cast<float*>(params)), {}};
  }

  // A batch of P prompts x K samples (sample s = p * K + k): every earlier group is dropped, then each
  // prompt is prefilled and each sample draws its first token.
  void start(const int32_t* prompt_tokens, const int32_t* prompt_starts, int P, int K, const uint32_t* seeds,
             const SamplingOptions& o, const Outputs& out) {
    groups_.clear();
    std::vector<Group*> fresh;
    for (int p = 0; p < P; ++p) {
      const int32_t* prompt = prompt_tokens + prompt_starts[p];
      const int L = prompt_starts[p + 1] - prompt_starts[p];
      fresh.push_back(add_group(p, prompt, L, K, seeds + int64_t(p) * K, o, at_sample(out, o, p * K)));
    }
    prefill(fresh);
  }

  // Adds one prompt with K samples to the running batch (continuous batching): it is prefilled now and
  // decodes with the others from the next step on. Its samples are exactly those start() would draw.
  void admit(int id, const int32_t* prompt, int L, int K, const uint32_t* seeds, const SamplingOptions& o,
             const Outputs& out) {
    if (groups_.count(id)) throw std::invalid_argument("group id already in use");
    prefill({add_group(id, prompt, L, K, seeds, o, out)});
  }

  // Drops a group (its caches are freed); its samples stop decoding.
  void release(int id) { groups_.erase(id); }

  // Runs up to `steps` decode steps over every running sample of every group; returns how many run on.
  int step(int steps) {
    for (int t = 0; t < steps; ++t) {
      std::vector<Row> rows;
      std::vector<Seq*> who;
      std::vector<const SamplingOptions*> opts;
      for (auto& [id, g] : groups_) {
        for (int k = 0; k < int(g->seqs.size()); ++k) {
          Seq& q = g->seqs[k];
          if (*q.finish != kRunning) continue;
          const int n = *q.len;
          rows.push_back(Row{q.tokens[n - 1], g->length() + n - 1, g.get(), k});
          who.push_back(&q);
          opts.push_back(&g->o);
        }
      }
      if (rows.empty()) return 0;
      std::vector<int> all(rows.size());
      std::iota(all.begin(), all.end(), 0);
      forward(rows, all);
      draw(int(who.size()), [&](int i) { return logits_.data() + int64_t(i) * c_.vocab; },
           [&](int i) { return who[i]; }, [&](int i) { return opts[i]; });
    }
    return live();
  }

  void finish(int id, int k) {
    auto it = groups_.find(id);
    if (it == groups_.end() || k < 0 || k >= int(it->second->seqs.size()))
      throw std::out_of_range("sample index out of range");
    int32_t* f = it->second->seqs[k].finish;
    if (*f == kRunning) *f = kStopped;
  }

 private:
  // The outputs of samples s, s+1, ... of a start() batch.
  Outputs at_sample(const Outputs& out, const SamplingOptions& o, int s) const {
    const int64_t at = int64_t(s) * o.max_new;
    return Outputs{out.tokens + at, out.logp + at, out.len + s, out.finish + s,
                   out.logits ? out.logits + at * c_.vocab : nullptr};
  }

  Group* add_group(int id, const int32_t* prompt, int L, int K, const uint32_t* seeds, const SamplingOptions& o,
                   const Outputs& out) {
    if (o.max_new <= 0) throw std::invalid_argument("maxNewTokens must be positive");
    if (L <= 0) throw std::invalid_argument("every prompt needs a token");
    auto g = std::make_unique<Group>();
    g->prompt.assign(prompt, prompt + L);
    g->o = o;
    const int64_t kvd = c_.kv_dim(), V = c_.vocab;
    g->kv.assign(size_t(c_.layers) * 2 * L * kvd, 0.f);
    g->seqs.resize(K);
    for (int k = 0; k < K; ++k) {
      Seq& q = g->seqs[k];
      q.rng.state = seeds[k];
      q.kv.assign(size_t(c_.layers) * 2 * o.max_new * kvd, 0.f);
      q.tokens = out.tokens + int64_t(k) * o.max_new;
      q.logp = out.logp + int64_t(k) * o.max_new;
      q.logits = out.logits ? out.logits + int64_t(k) * o.max_new * V : nullptr;
      q.len = out.len + k;
      q.finish = out.finish + k;
      *q.len = 0;
      *q.finish = kRunning;
    }
    ensure_rope(L + o.max_new);
    Group* raw = g.get();
    groups_[id] = std::move(g);
    return raw;
  }

  // Prefills the groups' prompts in chunks of rows, in order (a chunk's rows attend to the keys and
  // values earlier chunks cached, so activation memory stays bounded), then each sample draws its first
  // token from its prompt's last-row logits.
  void prefill(const std::vector<Group*>& groups) {
    const int V = c_.vocab;
    std::vector<Row> all;
    std::vector<int> last_of;  // row index of each group's last prompt token
    for (Group* g : groups) {
      for (int j = 0; j < g->length(); ++j) all.push_back(Row{g->prompt[j], j, g, -1});
      last_of.push_back(int(all.size()) - 1);
    }
    prompt_logits_.resize(groups.size() * size_t(V));
    for (int r0 = 0, gi = 0; r0 < int(all.size()); r0 += kPrefillRows) {
      const int r1 = std::min(int(all.size()), r0 + kPrefillRows);
      std::vector<Row> rows(all.begin() + r0, all.begin() + r1);
      std::vector<int> last, last_group;
      for (; gi < int(groups.size()) && last_of[gi] < r1; ++gi) last.push_back(last_of[gi] - r0), last_group.push_back(gi);
      forward(rows, last);
      for (size_t m = 0; m < last.size(); ++m)
        std::memcpy(prompt_logits_.data() + int64_t(last_group[m]) * V, logits_.data() + int64_t(m) * V,
                    sizeof(float) * V);
    }
    std::vector<Seq*> who;
    std::vector<int> group_of;
    for (int gi = 0; gi < int(groups.size()); ++gi)
      for (Seq& q : groups[gi]->seqs) who.push_back(&q), group_of.push_back(gi);
    draw(int(who.size()), [&](int i) { return prompt_logits_.data() + int64_t(group_of[i]) * V; },
         [&](int i) { return who[i]; }, [&](int i) { return &groups[group_of[i]]->o; });
  }

  int live() const {
    int n = 0;
    for (const auto& [id, g] : groups_)
      for (const Seq& q : g->seqs) n += *q.finish == kRunning;
    return n;
  }

  void ensure_rope(int max_len) {
    if (int(cos_.size()) >= max_len * (c_.head_dim / 2)) return;
    rope_tables(c_, max_len, cos_, sin_);
  }

  // Where position j of row r's context keeps its key (kv = 0) or value (kv = 1) in layer l.
  float* kv_at(int l, int kv, const Row& r, int j) {
    const int64_t kvd = c_.kv_dim();
    const Group& g = *r.group;
    const int L = g.length();
    if (j < L) return const_cast<float*>(g.kv.data()) + ((int64_t(l) * 2 + kv) * L + j) * kvd;
    const int max_new = g.o.max_new;
    return const_cast<float*>(g.seqs[r.sample].kv.data()) + ((int64_t(l) * 2 + kv) * max_new + (j - L)) * kvd;
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

  // Sample seq_of(i) draws its next token from logits_of(i) with options opts_of(i), for i < n.
  template <typename LogitsOf, typename SeqOf, typename OptsOf>
  void draw(int n, LogitsOf logits_of, SeqOf seq_of, OptsOf opts_of) {
    const int V = c_.vocab;
    parallel_for(n, 8, [&](int64_t b, int64_t e) {
      std::vector<int32_t> order;
      std::vector<double> prob;
      for (int64_t i = b; i < e; ++i) {
        Seq& q = *seq_of(int(i));
        const SamplingOptions& o = *opts_of(int(i));
        const float* logits = logits_of(int(i));
        double lp = 0;
        const int32_t token = sample_token(logits, V, o, q.rng, order, prob, &lp);
        const int n_done = *q.len;
        if (q.logits) std::memcpy(q.logits + int64_t(n_done) * V, logits, sizeof(float) * V);
        if (std::find(o.eos.begin(), o.eos.end(), token) != o.eos.end()) {
          *q.finish = kEos;
          continue;
        }
        q.tokens[n_done] = token;
        q.logp[n_done] = float(lp);
        if (++*q.len == o.max_new) *q.finish = kLength;
      }
    });
  }

  LlamaConfig c_;
  LlamaWeights<float> w_;
  std::optional<LoraAdapter<float>> lora_;
  std::vector<float> lora_u_;
  // Groups by id, in id order: the decode batch's rows follow it.
  std::map<int, std::unique_ptr<Group>> groups_;
  std::vector<float> cos_, sin_;
  std::vector<float> x_, xn_, rstd_, qkv_, att_, gu_, act_, hidden_, logits_, prompt_logits_;
};

// new Sampler(config, params, lora?: { spec, params }); start(...), step(n), finish(sample), admit(...),
// release(id), stop(id, k): see src/engine/sampler.ts. Output arrays are the caller's; they are kept alive
// while in use.
class SamplerWrap : public Napi::ObjectWrap<SamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sampler",
                       {InstanceMethod("start", &SamplerWrap::Start), InstanceMethod("step", &SamplerWrap::Step),
                        InstanceMethod("finish", &SamplerWrap::Finish), InstanceMethod("admit", &SamplerWrap::Admit),
                        InstanceMethod("release", &SamplerWrap::Release), InstanceMethod("stop", &SamplerWrap::Stop)});
  }

  explicit SamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SamplerWrap>(info) {
    config_ = config_from_js(info[0]);
    const float* params = array_arg<float>(info, 1, "params", size_t(param_count(config_)));
    params_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
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
    const int32_t* prompt = prompt_arg(info, 0, size_t(starts[P]));
    const int K = samples_arg(info, 2);
    const uint32_t* seeds = seeds_arg(info, 3, size_t(P) * K);
    SamplingOptions o = options_arg(info, 4);
    const Outputs out = outputs_arg(info, 5, size_t(P) * K, o.max_new, true);
    refs_.clear();
    K_ = K;
    guarded(env, [&] { gen_->start(prompt, starts, P, K, seeds, o, out); });
    refs_[-1] = keep(info, {5, 6, 7, 8, 9});
    return env.Undefined();
  }

  // admit(id, promptTokens: Int32Array, K, seeds: Uint32Array(K), options, tokens: Int32Array(K*maxNew),
  //       logp: Float32Array(K*maxNew), len: Int32Array(K), finish: Int32Array(K)): adds one prompt's K
  //       samples to the running batch; id >= 0, unused.
  Napi::Value Admit(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const int id = info[0].As<Napi::Number>().Int32Value();
    if (id < 0) throw Napi::RangeError::New(env, "group id must be >= 0");
    size_t L = 0;
    array_arg<int32_t>(info, 1, "promptTokens", 1, &L);
    const int32_t* prompt = prompt_arg(info, 1, L);
    const int K = samples_arg(info, 2);
    const uint32_t* seeds = seeds_arg(info, 3, size_t(K));
    SamplingOptions o = options_arg(info, 4);
    const Outputs out = outputs_arg(info, 5, size_t(K), o.max_new, false);
    guarded(env, [&] { gen_->admit(id, prompt, int(L), K, seeds, o, out); });
    refs_[id] = keep(info, {5, 6, 7, 8});
    return env.Undefined();
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    const int id = info[0].As<Napi::Number>().Int32Value();
    gen_->release(id);
    refs_.erase(id);
    return info.Env().Undefined();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    const int steps = info[0].As<Napi::Number>().Int32Value();
    return Napi::Number::New(info.Env(), guarded(info.Env(), [&] { return gen_->step(steps); }));
  }

  // finish(s): ends sample s = p * K + k of the start() batch.
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    const int s = info[0].As<Napi::Number>().Int32Value();
    if (s < 0 || K_ == 0) throw Napi::RangeError::New(info.Env(), "sample index out of range");
    guarded(info.Env(), [&] { gen_->finish(s / K_, s % K_); });
    return info.Env().Undefined();
  }

  // stop(id, k): ends sample k of an admitted group.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    const int id = info[0].As<Napi::Number>().Int32Value(), k = info[1].As<Napi::Number>().Int32Value();
    guarded(info.Env(), [&] { gen_->finish(id, k); });
    return info.Env().Undefined();
  }

  const int32_t* prompt_arg(const Napi::CallbackInfo& info, size_t i, size_t n) {
    const int32_t* prompt = array_arg<int32_t>(info, i, "promptTokens", n);
    for (size_t j = 0; j < n; ++j)
      if (prompt[j] < 0 || prompt[j] >= config_.vocab)
        throw Napi::RangeError::New(info.Env(), "prompt token out of vocabulary");
    return prompt;
  }

  static int samples_arg(const Napi::CallbackInfo& info, size_t i) {
    const int K = info[i].As<Napi::Number>().Int32Value();
    if (K <= 0) throw Napi::RangeError::New(info.Env(), "samplesPerPrompt must be positive");
    return K;
  }

  static const uint32_t* seeds_arg(const Napi::CallbackInfo& info, size_t i, size_t n) {
    const Napi::Value sv = info[i];
    if (!sv.IsTypedArray() || sv.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        sv.As<Napi::TypedArray>().ElementLength() < n)
      throw Napi::TypeError::New(info.Env(), "seeds must be a Uint32Array with one seed per sample");
    return sv.As<Napi::Uint32Array>().Data();
  }

  static SamplingOptions options_arg(const Napi::CallbackInfo& info, size_t i) {
    const Napi::Object opts = info[i].As<Napi::Object>();
    SamplingOptions o;
    o.temperature = opts.Get("temperature").As<Napi::Number>().FloatValue();
    o.top_k = opts.Get("topK").As<Napi::Number>().Int32Value();
    o.top_p = opts.Get("topP").As<Napi::Number>().FloatValue();
    o.max_new = opts.Get("maxNewTokens").As<Napi::Number>().Int32Value();
    if (o.max_new <= 0) throw Napi::RangeError::New(info.Env(), "maxNewTokens must be positive");
    const Napi::Int32Array eos = opts.Get("eosTokenIds").As<Napi::Int32Array>();
    o.eos.assign(eos.Data(), eos.Data() + eos.ElementLength());
    return o;
  }

  // tokens, logp, len, finish (and logits, when with_logits and not null) from argument i on.
  Outputs outputs_arg(const Napi::CallbackInfo& info, size_t i, size_t S, int max_new, bool with_logits) {
    const size_t cells = S * size_t(max_new);
    Outputs out{array_arg<int32_t>(info, i, "tokens", cells), array_arg<float>(info, i + 1, "logp", cells),
                array_arg<int32_t>(info, i + 2, "len", S), array_arg<int32_t>(info, i + 3, "finish", S), nullptr};
    if (with_logits && !info[i + 4].IsNull() && !info[i + 4].IsUndefined())
      out.logits = array_arg<float>(info, i + 4, "logits", cells * config_.vocab);
    return out;
  }

  static std::vector<Napi::ObjectReference> keep(const Napi::CallbackInfo& info, std::initializer_list<size_t> args) {
    std::vector<Napi::ObjectReference> refs;
    for (size_t i : args)
      if (info[i].IsObject()) refs.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    return refs;
  }

  LlamaConfig config_;
  std::unique_ptr<Generator> gen_;
  int K_ = 0;
  Napi::ObjectReference params_ref_;
  // The output arrays of each admitted group (-1: the start() batch's).
  std::map<int, std::vector<Napi::ObjectReference>> refs_;
  Napi::ObjectReference lora_ref_;
};

}  // namespace

void register_generate(Napi::Env env, Napi::Object exports) { exports.Set("Sampler", SamplerWrap::Define(env)); }

}  // namespace dno
