// A caching allocator for device memory. Freed blocks go to per-size free lists and are
// handed out again without calling cudaMalloc; because every kernel runs on one stream,
// a block freed while kernels that use it are still queued can be reused at once (the
// next user is ordered after them on the same stream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace blora {

// Counters of the caching allocator.
struct AllocatorStats {
  size_t reservedBytes = 0;   // obtained from cudaMalloc and not yet returned
  size_t allocatedBytes = 0;  // in blocks currently handed out (rounded block sizes)
  size_t requestedBytes = 0;  // what callers asked for, for the blocks handed out
  size_t cachedBytes = 0;     // reserved but free, waiting for reuse
  size_t peakAllocatedBytes = 0;
  size_t liveBlocks = 0;
  size_t cachedBlocks = 0;
  uint64_t cudaMallocCalls = 0;
  uint64_t cudaFreeCalls = 0;
  uint64_t cacheHits = 0;
};

class CachingAllocator {
 public:
  // A block of at least `bytes` (> 0). Throws OutOfMemory when the device is full even
  // after the cache was returned to the driver.
  void* allocate(size_t bytes);
  // Returns a block from `allocate` to the cache. Throws on an unknown pointer.
  void release(void* ptr);
  // Returns every cached (free) block to the driver.
  void emptyCache();
  AllocatorStats stats() const;

  // The block size a request of `bytes` is rounded up to (its size class).
  static size_t roundSize(size_t bytes);

  // Graph capture (graph.cc). Every block handed out between beginCapture and endCapture may be
  // used by the recorded graph on each replay, so from endCapture on none of them goes back to
  // the shared cache: those already freed and those freed later wait in the graph's pool until
  // releasePool (the graph is destroyed). Blocks freed during the capture are reused by the
  // capture itself, which is safe: the graph runs its kernels in the order they were recorded.
  void beginCapture();
  int endCapture();  // returns the new pool's id
  void releasePool(int pool);

 private:
  struct Live {
    size_t blockSize;
    size_t requested;
  };
  struct Pool {
    std::unordered_set<void*> blocks;            // every block the capture handed out
    std::vector<std::pair<void*, size_t>> free;  // those freed, with their sizes
  };
  std::unordered_map<void*, Live> live_;
  std::unordered_map<size_t, std::vector<void*>> cached_;
  AllocatorStats stats_;
  bool capturing_ = false;
  std::unordered_set<void*> captured_;
  std::unordered_map<void*, int> poolOf_;  // a captured block's pool, while the graph lives
  std::unordered_map<int, Pool> pools_;
  int nextPool_ = 1;
};

// The process-wide allocator.
CachingAllocator& allocator();

}  // namespace blora
