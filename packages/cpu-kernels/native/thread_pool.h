// A persistent pool of worker threads for fork-join loops.
//
// Threads are created once and reused. A call publishes a job (function, context, task count),
// the workers and the caller claim task indices from a shared counter, and the call returns as
// soon as every task has finished: a worker that was descheduled and wakes up late finds
// nothing left to claim, so the caller never waits for it. Idle workers spin briefly before
// sleeping on a condition variable, because kernels such as GEMM issue several jobs in a row.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace blora {

/** Fork-join thread pool; the calling thread is participant 0. */
class ThreadPool {
 public:
  /** Task body: runs task `task` on participant `thread` (0 = the caller). */
  using TaskFn = void (*)(void* context, int64_t task, int thread);

  /** Starts `threads - 1` workers (a pool of 1 runs everything on the caller). */
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /** Participants, the caller included. */
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  /**
   * Runs fn(context, t, thread) for every t < count on up to `threads` participants and
   * returns when all tasks are done. When another thread is using the pool, runs on the caller alone.
   */
  void run(int64_t count, int threads, TaskFn fn, void* context);

 private:
  struct Job {
    TaskFn fn;
    void* context;
    int64_t count;
    int threads;
    uint32_t id;
  };

  void worker_loop(int index);
  void publish(TaskFn fn, void* context, int64_t count, int threads);
  bool read_job(uint32_t seq, Job* job) const;
  void work_on(const Job& job, int thread);
  void wait_for_change(uint32_t seen);

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one job at a time
  std::mutex mutex_;       // guards sleeping and waking
  std::condition_variable wake_;
  std::condition_variable done_;

  // The job, guarded by a sequence lock: seq_ is odd while the fields are rewritten, and the
  // job id is seq_ / 2. Task claims carry the job id in their upper half, so a worker holding
  // a stale job can never claim a task of the next one.
  std::atomic<uint32_t> seq_{0};
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> context_{nullptr};
  std::atomic<int64_t> count_{0};
  std::atomic<int> job_threads_{0};
  std::atomic<uint64_t> claim_{0};   // (job id << 32) | next task
  std::atomic<int64_t> finished_{0};  // tasks of the current job that are done
  std::atomic<int> sleepers_{0};      // workers blocked on wake_
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

/** The process-wide pool, created on first use with kernel_threads() participants. */
ThreadPool& global_pool();

/** Participants kernels use (1 = no workers). */
int kernel_threads();

/** Replaces the global pool with one of `threads` participants (>= 1). Not thread-safe with running kernels. */
void set_kernel_threads(int threads);

/**
 * Runs body(task, thread) for every task < count on up to `threads` participants of the
 * global pool; on the caller alone when threads <= 1 or count <= 1.
 */
template <typename Body>
void parallel_for(int64_t count, int threads, const Body& body) {
  if (count <= 0) return;
  if (threads <= 1 || count == 1) {
    for (int64_t t = 0; t < count; ++t) body(t, 0);
    return;
  }
  global_pool().run(
      count, threads,
      [](void* context, int64_t task, int thread) { (*static_cast<const Body*>(context))(task, thread); },
      const_cast<Body*>(&body));
}

}  // namespace blora
