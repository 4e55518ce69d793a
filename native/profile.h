// Wall time per phase of the decoder's forward and backward, always on (two clock reads per kernel
// call), read by engine().kernelProfile() to show what bounds a training step.
#pragma once
#include <chrono>
#include <cstdint>

namespace dno {

enum Phase : int {
  kEmbedding,
  kRmsnorm,
  kMatmul,
  kRope,
  kAttention,
  kSwiglu,
  kLmHead,
  kElementwise,
  kLora,
  kPhaseCount
};

inline const char* phase_name(int p) {
  static const char* names[] = {"embedding", "rmsnorm", "matmul", "rope", "attention", "swiglu", "lm_head+logsoftmax", "elementwise",
                                "lora"};
  return names[p];
}

// Seconds spent per phase since the last reset (main thread only: kernels are called from JS).
inline double* phase_seconds() {
  static double seconds[kPhaseCount] = {};
  return seconds;
}

struct PhaseTimer {
  explicit PhaseTimer(Phase p) : phase(p), start(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() {
    phase_seconds()[phase] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  Phase phase;
  std::chrono::steady_clock::time_point start;
};

}  // namespace dno
