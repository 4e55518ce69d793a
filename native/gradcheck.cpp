#include "gradcheck.h"

#include <cmath>
#include <functional>
#include <random>

#include "kernels.h"

namespace dno {
namespace {

using Vec = std::vector<double>;
using Inputs = std::vector<Vec>;

Vec randn(size_t n, std::mt19937_64& rng, double std = 1.0) {
  std::normal_distribution<double> d(0.0, std);
  Vec v(n);
  for (double& x : v) x = d(rng);
  return v;
}

// L(inputs) = sum(forward(inputs) * dout). backward(inputs, dout) returns dL/d(each input), computed by
// the kernel's backward from zeroed gradients. Every input element is perturbed by +-h.
GradcheckResult check(const std::string& name, Inputs inputs, const std::function<Vec(const Inputs&)>& forward,
                      const std::function<Inputs(const Inputs&, const Vec&)>& backward, std::mt19937_64& rng) {
  const Vec dout = randn(forward(inputs).size(), rng);
  auto loss = [&](const Inputs& in) {
    const Vec out = forward(in);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * dout[i];
    return s;
  };
  const Inputs analytic = backward(inputs, dout);
  const double h = 1e-5;
  GradcheckResult r{name, 0, 0.0, 0.0};
  double scale = 0;
  for (size_t t = 0; t < inputs.size(); ++t)
    for (size_t i = 0; i < inputs[t].size(); ++i) {
      const double x = inputs[t][i];
      inputs[t][i] = x + h;
      const double up = loss(inputs);
      inputs[t][i] = x - h;
      const double down = loss(inputs);
      inputs[t][i] = x;
      const double numeric = (up - down) / (2 * h);
      r.max_abs_err = std::max(r.max_abs_err, std::abs(analytic[t][i] - numeric));
      scale = std::max(scale, std::abs(numeric));
      ++r.checked;
    }
  r.max_rel_err = r.max_abs_err / std::max(scale, 1e-300);
  return r;
}

}  // namespace

std::vector<GradcheckResult> kernel_gradchecks() {
  std::mt19937_64 rng(1234);
  std::vector<GradcheckResult> out;

  {  // embedding: gradient wrt the table, with repeated tokens and a pad row that must get none
    const int V = 7, C = 5, N = 9, pad = 3;
    const std::vector<int32_t> tok = {1, 4, 1, 3, 0, 6, 4, 3, 2};
    out.push_back(check(
        "embedding", {randn(V * C, rng)},
        [&](const Inputs& in) {
          Vec o(N * C);
          embedding_forward(o.data(), tok.data(), in[0].data(), N, C);
          Vec masked = o;  // the pad rows' outputs do not depend on the table, as far as gradients go
          for (int n = 0; n < N; ++n)
            if (tok[n] == pad) std::fill(masked.begin() + n * C, masked.begin() + (n + 1) * C, 0.0);
          return masked;
        },
        [&](const Inputs&, const Vec& d) {
          Inputs g{Vec(V * C, 0.0)};
          embedding_backward(g[0].data(), d.data(), tok.data(), N, C, pad);
          return g;
        },
        rng));
  }
  {  // rmsnorm: wrt input and weight
    const int N = 4, C = 6;
    out.push_back(check(
        "rmsnorm", {randn(N * C, rng), randn(C, rng)},
        [&](const Inputs& in) {
          Vec o(N * C), rstd(N);
          rmsnorm_forward(o.data(), rstd.data(), in[0].data(), in[1].data(), N, C, 1e-5);
          return o;
        },
        [&](const Inputs& in, const Vec& d) {
          Vec o(N * C), rstd(N);
          rmsnorm_forward(o.data(), rstd.data(), in[0].data(), in[1].data(), N, C, 1e-5);
          Inputs g{Vec(N * C, 0.0), Vec(C, 0.0)};
          rmsnorm_backward(g[0].data(), g[1].data(), d.data(), in[0].data(), in[1].data(), rstd.data(), N, C);
          return g;
        },
        rng));
  }
  {  // rope: q and k heads inside a wider row, positions from two sequences
    const int N = 5, D = 6, H = 2, KV = 1, stride = (H + 2 * KV) * D, half = D / 2, P = 4;
    const std::vector<int32_t> pos = {0, 1, 2, 0, 3};
    Vec cs(P * half), sn(P * half);
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < half; ++i) {
        const double a = p * std::pow(10000.0, -2.0 * i / D) * 1.7;
        cs[p * half + i] = std::cos(a);
        sn[p * half + i] = std::sin(a);
      }
    auto fwd = [&](Vec x) {
      rope_apply(x.data(), N, stride, 0, H, D, pos.data(), cs.data(), sn.data(), false);
      rope_apply(x.data(), N, stride, H * D, KV, D, pos.data(), cs.data(), sn.data(), false);
      return x;
    };
    out.push_back(check(
        "rope", {randn(N * stride, rng)}, [&](const Inputs& in) { return fwd(in[0]); },
        [&](const Inputs&, const Vec& d) {
          Vec g = d;
          rope_apply(g.data(), N, stride, 0, H, D, pos.data(), cs.data(), sn.data(), true);
          rope_apply(g.data(), N, stride, H * D, KV, D, pos.data(), cs.data(), sn.data(), true);
          return Inputs{g};
        },
        rng));
  }
  // attention: GQA (4 query heads on 2 kv heads), three packed sequences; query blocks of 64 rows (one per
  // sequence here) and of 2 (across blocks)
  for (const auto& [window, row_block] : {std::pair{0, kAttentionRowBlock}, {3, kAttentionRowBlock}, {0, 2}, {3, 2}}) {
    const int H = 4, KV = 2, D = 4, QKV = (H + 2 * KV) * D;
    const std::vector<int32_t> starts = {0, 5, 6, 10};
    const int S = 3, N = starts[S];
    const SeqBatch sb{starts.data(), S};
    auto fwd = [&](const Vec& qkv, Vec& lse) {
      Vec o(N * H * D);
      lse.assign(N * H, 0.0);
      attention_forward(o.data(), lse.data(), qkv.data(), sb, H, KV, D, window, row_block);
      return o;
    };
    out.push_back(check(
        std::string(window ? "attention (sliding window 3)" : "attention") + ", query blocks of " +
            std::to_string(row_block),
        {randn(N * QKV, rng)},
        [&](const Inputs& in) {
          Vec lse;
          return fwd(in[0], lse);
        },
        [&](const Inputs& in, const Vec& d) {
          Vec lse;
          fwd(in[0], lse);
          Inputs g{Vec(N * QKV, 0.0)};
          attention_backward(g[0].data(), d.data(), in[0].data(), lse.data(), sb, H, KV, D, window, row_block);
          return g;
        },
        rng));
  }
  {  // swiglu
    const int N = 3, I = 5;
    out.push_back(check(
        "swiglu", {randn(N * 2 * I, rng)},
        [&](const Inputs& in) {
          Vec o(N * I);
          swiglu_forward(o.data(), in[0].data(), N, I);
          return o;
        },
        [&](const Inputs& in, const Vec& d) {
          Inputs g{Vec(N * 2 * I, 0.0)};
          swiglu_backward(g[0].data(), d.data(), in[0].data(), N, I);
          return g;
        },
        rng));
  }
  {  // bias
    const int N = 3, W = 4;
    const Vec base = randn(N * W, rng);
    out.push_back(check(
        "bias", {randn(W, rng)},
        [&](const Inputs& in) {
          Vec o = base;
          bias_forward(o.data(), in[0].data(), N, W);
          return o;
        },
        [&](const Inputs&, const Vec& d) {
          Inputs g{Vec(W, 0.0)};
          bias_backward(g[0].data(), d.data(), N, W);
          return g;
        },
        rng));
  }
  {  // log-softmax with gathered targets, over the vocabulary in two chunks (columns [0, 4) and [4, 9))
    const int M = 4, V = 9, split = 4;
    const std::vector<int32_t> tgt = {2, 0, 8, 5};
    auto chunk = [&](const Vec& full, int v0, int vc) {
      Vec c(size_t(M) * vc);
      for (int m = 0; m < M; ++m)
        for (int i = 0; i < vc; ++i) c[size_t(m) * vc + i] = full[size_t(m) * V + v0 + i];
      return c;
    };
    auto forward = [&](const Vec& logits, Vec& lse) {
      Vec lp(M);
      for (int v0 : {0, split}) {
        const int vc = v0 == 0 ? split : V - split;
        logsoftmax_chunk_forward(lse.data(), lp.data(), chunk(logits, v0, vc).data(), tgt.data(), M, v0, vc);
      }
      for (int m = 0; m < M; ++m) lp[m] -= lse[m];
      return lp;
    };
    out.push_back(check(
        "logsoftmax_chunk", {randn(M * V, rng, 3.0)},
        [&](const Inputs& in) {
          Vec lse(M);
          return forward(in[0], lse);
        },
        [&](const Inputs& in, const Vec& d) {
          Vec lse(M);
          forward(in[0], lse);
          Inputs g{Vec(size_t(M) * V)};
          for (int v0 : {0, split}) {
            const int vc = v0 == 0 ? split : V - split;
            Vec c = chunk(in[0], v0, vc);
            logsoftmax_chunk_backward(c.data(), d.data(), lse.data(), tgt.data(), M, v0, vc);
            for (int m = 0; m < M; ++m)
              for (int i = 0; i < vc; ++i) g[0][size_t(m) * V + v0 + i] = c[size_t(m) * vc + i];
          }
          return g;
        },
        rng));
  }
  return out;
}

}  // namespace dno
