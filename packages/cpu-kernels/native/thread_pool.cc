#include "thread_pool.h"

#include <chrono>

#include "kernels.h"

namespace blora {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle thread keeps polling before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(200);

constexpr uint64_t kTaskMask = 0xffffffffu;

/** Polls `ready` for up to kSpinTime; true when it became true. */
template <typename Ready>
bool spin_until(const Ready& ready) {
  const auto start = std::chrono::steady_clock::now();
  for (int spins = 1;; ++spins) {
    if (ready()) return true;
    cpu_relax();
    if ((spins & 255) == 0 && std::chrono::steady_clock::now() - start > kSpinTime) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  publish(nullptr, nullptr, 0, 0);
  for (auto& w : workers_) w.join();
}

void ThreadPool::publish(TaskFn fn, void* context, int64_t count, int threads) {
  const uint32_t seq = seq_.load(std::memory_order_relaxed);
  seq_.store(seq + 1, std::memory_order_relaxed);  // odd: fields are being written
  std::atomic_thread_fence(std::memory_order_release);
  fn_.store(fn, std::memory_order_relaxed);
  context_.store(context, std::memory_order_relaxed);
  count_.store(count, std::memory_order_relaxed);
  job_threads_.store(threads, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  const uint32_t id = (seq + 2) / 2;
  claim_.store(static_cast<uint64_t>(id) << 32, std::memory_order_relaxed);
  seq_.store(seq + 2);  // even: published (sequentially consistent, see wait_for_change)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
}

bool ThreadPool::read_job(uint32_t seq, Job* job) const {
  if (seq & 1) return false;
  job->fn = fn_.load(std::memory_order_relaxed);
  job->context = context_.load(std::memory_order_relaxed);
  job->count = count_.load(std::memory_order_relaxed);
  job->threads = job_threads_.load(std::memory_order_relaxed);
  job->id = seq / 2;
  std::atomic_thread_fence(std::memory_order_acquire);
  return seq_.load(std::memory_order_relaxed) == seq;
}

void ThreadPool::work_on(const Job& job, int thread) {
  uint64_t c = claim_.load(std::memory_order_relaxed);
  for (;;) {
    if ((c >> 32) != job.id || static_cast<int64_t>(c & kTaskMask) >= job.count) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acquire, std::memory_order_relaxed)) continue;
    job.fn(job.context, static_cast<int64_t>(c & kTaskMask), thread);
    // Sequentially consistent with the caller's flag and check (see run()).
    if (finished_.fetch_add(1) + 1 == job.count && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
    c = claim_.load(std::memory_order_relaxed);
  }
}

void ThreadPool::wait_for_change(uint32_t seen) {
  if (spin_until([&] { return seq_.load(std::memory_order_acquire) != seen; })) return;
  std::unique_lock<std::mutex> lock(mutex_);
  // Announce the sleeper before re-checking: publish() stores seq_ before reading sleepers_,
  // so either it sees this sleeper and notifies, or this check sees the new job.
  sleepers_.fetch_add(1);
  wake_.wait(lock, [&] { return seq_.load() != seen; });
  sleepers_.fetch_sub(1);
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    wait_for_change(seen);
    const uint32_t seq = seq_.load(std::memory_order_acquire);
    Job job;
    if (!read_job(seq, &job)) continue;  // caught mid-update: look again
    seen = seq;
    if (stop_.load()) return;
    if (index < job.threads) work_on(job, index);
  }
}

void ThreadPool::run(int64_t count, int threads, TaskFn fn, void* context) {
  if (threads > size()) threads = size();
  if (count < threads) threads = static_cast<int>(count);
  std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
  if (threads <= 1 || !call.owns_lock() || count > static_cast<int64_t>(kTaskMask)) {
    for (int64_t t = 0; t < count; ++t) fn(context, t, 0);
    return;
  }
  publish(fn, context, count, threads);
  Job job{fn, context, count, threads, (seq_.load(std::memory_order_relaxed)) / 2};
  work_on(job, 0);
  // Every task is claimed; wait for those still running on workers.
  auto all_done = [&] { return finished_.load() == count; };
  if (spin_until(all_done)) return;
  std::unique_lock<std::mutex> lock(mutex_);
  // Set the flag before the final check: the worker that finishes the last task increments
  // the count before reading the flag, so either it notifies or this check sees the count.
  caller_sleeping_.store(true);
  done_.wait(lock, all_done);
  caller_sleeping_.store(false);
}

namespace {

int g_threads = 0;             // 0 = not decided yet
ThreadPool* g_pool = nullptr;  // deliberately never destroyed: workers may still be parked at exit

}  // namespace

int kernel_threads() {
  if (g_threads == 0) g_threads = available_cpus();
  return g_threads;
}

ThreadPool& global_pool() {
  if (!g_pool) g_pool = new ThreadPool(kernel_threads());
  return *g_pool;
}

void set_kernel_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads == g_threads && g_pool) return;
  delete g_pool;
  g_pool = nullptr;
  g_threads = threads;
}

}  // namespace blora
