// One persistent pool. Workers spin briefly after each job (kernels come back to back in a training
// step), then sleep on a condition variable so an idle engine costs no CPU.
#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DNO_CPU_RELAX() _mm_pause()
#else
#define DNO_CPU_RELAX() std::this_thread::yield()
#endif

namespace dno {
namespace {

using RangeFn = std::function<void(int64_t, int64_t)>;

thread_local bool t_inside_pool = false;

// How long a worker (or the waiting caller) spins on the CPU, then yields it in a loop, before sleeping.
// A sleeping thread takes milliseconds to get a CPU back on a busy machine; a yielding one stays
// runnable and picks up the next kernel at once, while letting other processes run.
constexpr auto kSpin = std::chrono::milliseconds(1);
constexpr auto kYield = std::chrono::milliseconds(2);

// Exceptions are optional (node-gyp builds with -fno-exceptions unless told otherwise): with them, an
// exception thrown by fn reaches parallel_for's caller; without them, fn must not fail.
#if defined(__cpp_exceptions)
#define DNO_TRY try
#define DNO_CATCH_ALL(...) catch (...) { __VA_ARGS__ }
#else
#define DNO_TRY
#define DNO_CATCH_ALL(...)
#endif

void run_inline(int64_t n, const RangeFn& fn) {
  const bool outer = t_inside_pool;
  t_inside_pool = true;
  DNO_TRY { fn(0, n); }
  DNO_CATCH_ALL(t_inside_pool = outer; throw;)
  t_inside_pool = outer;
}

template <typename Ready>
void spin_then_wait(std::mutex& m, std::condition_variable& cv, std::atomic<int>& waiting, Ready ready) {
  const auto start = std::chrono::steady_clock::now();
  while (!ready()) {
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited > kSpin + kYield) {
      std::unique_lock<std::mutex> lk(m);
      waiting.fetch_add(1, std::memory_order_seq_cst);
      cv.wait(lk, ready);
      waiting.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    if (waited > kSpin)
      std::this_thread::yield();
    else
      for (int i = 0; i < 32; ++i) DNO_CPU_RELAX();
  }
}

// Wakes a waiter of spin_then_wait. Pairs with its seq_cst increment: either the waiter sees the new
// state before sleeping, or we see it waiting and notify under its mutex.
void wake(std::mutex& m, std::condition_variable& cv, std::atomic<int>& waiting) {
  if (waiting.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lk(m);
    cv.notify_all();
  }
}

class Pool {
 public:
  Pool() {
    const unsigned hw = std::thread::hardware_concurrency();
    start(hw == 0 ? 1 : static_cast<int>(hw));
  }
  ~Pool() { stop(); }

  int size() const { return threads_; }

  void resize(int n) {
    std::lock_guard<std::mutex> call(call_mutex_);
    stop();
    start(std::clamp(n, 1, 1024));
  }

  void run(int64_t n, int64_t grain, const RangeFn& fn) {
    std::lock_guard<std::mutex> call(call_mutex_);
    const int chunks = static_cast<int>(std::min<int64_t>(threads_, (n + grain - 1) / grain));  // < 2^16
    if (chunks <= 1) {
      run_inline(n, fn);
      return;
    }
    fn_ = &fn;
    n_ = n;
    error_ = nullptr;
    pending_.store(chunks, std::memory_order_relaxed);
    ++generation_;
    // Publishes the job: generation in bits 32-63, chunk count in 16-31, next unclaimed chunk in 0-15.
    ticket_.store(generation_ << 32 | static_cast<uint64_t>(chunks) << 16, std::memory_order_seq_cst);
    wake(mutex_, wake_cv_, sleeping_workers_);
    t_inside_pool = true;
    work(generation_);
    t_inside_pool = false;
    spin_then_wait(mutex_, done_cv_, sleeping_caller_,
                   [this] { return pending_.load(std::memory_order_acquire) == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void start(int n) {
    threads_ = n;
    stopping_.store(false);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void stop() {
    stopping_.store(true, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      wake_cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  // Claims chunks of job `gen` until none are left; chunk c is [n*c/chunks, n*(c+1)/chunks). The job's
  // fields stay valid while we hold an unfinished chunk, since the caller waits for all of them.
  void work(uint64_t gen) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((t >> 32) != gen) return;
      const int c = static_cast<int>(t & 0xffffu);
      const int chunks = static_cast<int>((t >> 16) & 0xffffu);
      if (c >= chunks) return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      DNO_TRY { (*fn_)(n_ * c / chunks, n_ * (c + 1) / chunks); }
      DNO_CATCH_ALL(std::lock_guard<std::mutex> lk(mutex_); if (!error_) error_ = std::current_exception();)
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) wake(mutex_, done_cv_, sleeping_caller_);
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  void worker_loop() {
    t_inside_pool = true;
    uint64_t seen = 0;  // before every job: a worker that starts late still joins the job in flight
    for (;;) {
      spin_then_wait(mutex_, wake_cv_, sleeping_workers_, [&] {
        return stopping_.load(std::memory_order_seq_cst) ||
               (ticket_.load(std::memory_order_seq_cst) >> 32) != seen;
      });
      if (stopping_.load()) return;
      seen = ticket_.load(std::memory_order_acquire) >> 32;
      work(seen);
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time from outside the pool
  std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<int> sleeping_caller_{0};
  std::atomic<uint64_t> ticket_{0};
  uint64_t generation_ = 0;
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (t_inside_pool || n <= grain) {
    run_inline(n, fn);
    return;
  }
  pool().run(n, grain, fn);
}

void set_num_threads(int n) { pool().resize(n); }

int num_threads() { return pool().size(); }

}  // namespace dno
