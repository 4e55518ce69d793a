// The one thread pool every kernel runs on.
#pragma once
#include <cstdint>
#include <functional>

namespace dno {

// Splits [0, n) into contiguous chunks of at least `grain` items and runs fn(begin, end) on the pool's
// threads, the calling thread included; returns when all chunks are done. Nested calls run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Threads used by parallel_for (default: hardware cores). Safe to call between kernels.
void set_num_threads(int n);
int num_threads();

}  // namespace dno
