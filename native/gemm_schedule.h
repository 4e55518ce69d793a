// Work sharing and scratch memory shared by the float32 (gemm.cpp) and bf16 (gemm_bf16.cpp) GEMM drivers.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include "threadpool.h"

namespace dno::gemm {

// One growing, 64-byte aligned buffer per calling thread (a GEMM may run inside another kernel's
// parallel_for, on several threads at once).
class Workspace {
 public:
  ~Workspace() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      capacity_ = (bytes + 63) & ~size_t{63};
      data_ = std::aligned_alloc(64, capacity_);
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// On a busy machine a worker can be preempted holding an item, and the caller then waits for a whole
// scheduler slice (milliseconds) with nothing left to do. After such a wait GEMMs run on the calling
// thread alone for a while (their results do not depend on the threads), then try the pool again.
constexpr int64_t kStragglerNs = 1000000;
constexpr int64_t kSoloNs = 10000000;
inline std::atomic<int64_t> g_solo_until_ns{0};

inline bool pool_is_prompt() { return now_ns() >= g_solo_until_ns.load(std::memory_order_relaxed); }

// Runs body(i) for i in [0, count), the pool's threads claiming items one at a time.
template <typename Body>
void for_each_claimed(int count, bool parallel, const Body& body) {
  std::atomic<int> next{0};
  const int64_t workers = parallel ? std::min<int64_t>(num_threads(), count) : 1;
  const std::thread::id caller = std::this_thread::get_id();
  int64_t caller_done_ns = 0;
  parallel_for(workers, 1, [&](int64_t, int64_t) {
    for (int i = next.fetch_add(1, std::memory_order_relaxed); i < count;
         i = next.fetch_add(1, std::memory_order_relaxed))
      body(i);
    if (std::this_thread::get_id() == caller) caller_done_ns = now_ns();
  });
  if (workers > 1 && now_ns() - caller_done_ns > kStragglerNs)
    g_solo_until_ns.store(now_ns() + kSoloNs, std::memory_order_relaxed);
}

// C (M,N) *= beta; beta = 0 writes zeros without reading C.
inline void scale_c(int M, int N, float beta, float* C, int64_t ldc) {
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f)
      std::fill(c, c + N, 0.0f);
    else if (beta != 1.0f)
      for (int j = 0; j < N; ++j) c[j] *= beta;
  }
}

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// The block size that splits `total` into the fewest near-equal blocks of at most `max_block`,
// rounded up to a multiple of `align`.
inline int block_size(int total, int max_block, int align) {
  const int parts = (total + max_block - 1) / max_block;
  const int size = (total + parts - 1) / parts;
  return round_up(size, align);
}

}  // namespace dno::gemm
