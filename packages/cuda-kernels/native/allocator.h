// A caching allocator for device memory. Freed blocks go to per-size free lists and are
// handed out again without calling cudaMalloc; because every kernel runs on one stream,
// a block freed while kernels that use it are still queued can be reused at once (the
// next user is ordered after them on the same stream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
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

 private:
  struct Live {
    size_t blockSize;
    size_t requested;
  };
  std::unordered_map<void*, Live> live_;
  std::unordered_map<size_t, std::vector<void*>> cached_;
  AllocatorStats stats_;
};

// The process-wide allocator.
CachingAllocator& allocator();

}  // namespace blora
