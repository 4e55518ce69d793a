#include "lora.h"

#include <stdexcept>

namespace dno {
namespace {

const char* const kTargetNames[kLoraTargetCount] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};

struct GroupShape {
  const char* module;  // the HF module path of its projections: self_attn or mlp
  int first, count;    // LoraTarget range
};
constexpr GroupShape kGroups[kLoraGroupCount] = {
    {"self_attn", kLoraQ, 3}, {"self_attn", kLoraO, 1}, {"mlp", kLoraGate, 2}, {"mlp", kLoraDown, 1}};

// (in, out, column of its output within the group's output rows) of target t.
void target_dims(const LlamaConfig& c, int t, int* in, int* out, int* col) {
  const int C = c.hidden, I = c.intermediate, Q = c.q_dim(), K = c.kv_dim();
  switch (t) {
    case kLoraQ: *in = C, *out = Q, *col = 0; return;
    case kLoraK: *in = C, *out = K, *col = Q; return;
    case kLoraV: *in = C, *out = K, *col = Q + K; return;
    case kLoraO: *in = Q, *out = C, *col = 0; return;
    case kLoraGate: *in = C, *out = I, *col = 0; return;
    case kLoraUp: *in = C, *out = I, *col = I; return;
    default: *in = I, *out = C, *col = 0; return;
  }
}

// Calls visit(layer, group, target, is_b, rows, cols, offset) for every adapter tensor in buffer order.
template <typename F>
int64_t walk(const LlamaConfig& c, const LoraSpec& s, F visit) {
  if (s.rank <= 0) throw std::invalid_argument("LoRA rank must be positive");
  if (s.targets == 0 || s.targets >> kLoraTargetCount) throw std::invalid_argument("LoRA targets: none or unknown");
  int64_t offset = 0;
  for (int l = 0; l < c.layers; ++l)
    for (int gi = 0; gi < kLoraGroupCount; ++gi)
      for (int is_b = 0; is_b < 2; ++is_b)
        for (int t = kGroups[gi].first; t < kGroups[gi].first + kGroups[gi].count; ++t) {
          if (!s.has(t)) continue;
          int in, out, col;
          target_dims(c, t, &in, &out, &col);
          const int rows = is_b ? out : s.rank, cols = is_b ? s.rank : in;
          visit(l, gi, t, is_b != 0, rows, cols, offset);
          offset += int64_t(rows) * cols;
        }
  return offset;
}

}  // namespace

const char* lora_target_name(int target) { return kTargetNames[target]; }

std::vector<TensorSlot> lora_layout(const LlamaConfig& c, const LoraSpec& s) {
  std::vector<TensorSlot> out;
  walk(c, s, [&](int l, int gi, int t, bool is_b, int rows, int cols, int64_t offset) {
    const std::string name = "base_model.model.model.layers." + std::to_string(l) + "." + kGroups[gi].module + "." +
                             kTargetNames[t] + (is_b ? ".lora_B.weight" : ".lora_A.weight");
    out.push_back({name, {rows, cols}, offset, int64_t(rows) * cols});
  });
  return out;
}

int64_t lora_param_count(const LlamaConfig& c, const LoraSpec& s) {
  return walk(c, s, [](int, int, int, bool, int, int, int64_t) {});
}

template <typename T>
std::vector<LoraLayer<T>> bind_lora(const LlamaConfig& c, const LoraSpec& s, T* base) {
  std::vector<LoraLayer<T>> layers(size_t(c.layers));
  walk(c, s, [&](int l, int gi, int t, bool is_b, int, int, int64_t offset) {
    LoraGroup<T>& g = layers[size_t(l)][size_t(gi)];
    int in, out, col;
    target_dims(c, t, &in, &out, &col);
    if (!is_b) {
      if (g.n == 0) g.a = base + offset;
      g.in = in;
      g.out[size_t(g.n)] = out;
      g.col[size_t(g.n)] = col;
      ++g.n;
      return;
    }
    int m = 0;  // B matrices follow the A matrices in the same module order
    while (g.b[size_t(m)] != nullptr) ++m;
    g.b[size_t(m)] = base + offset;
  });
  return layers;
}

template std::vector<LoraLayer<float>> bind_lora(const LlamaConfig&, const LoraSpec&, float*);
template std::vector<LoraLayer<double>> bind_lora(const LlamaConfig&, const LoraSpec&, double*);

}  // namespace dno
