// The caching allocator: size classes, free lists, and the out-of-memory path.
#include "allocator.h"

#include <sstream>

#include "common.h"

namespace blora {

namespace {

constexpr size_t kMinBlock = 512;
constexpr size_t kLargeBlock = size_t(16) << 20;  // from 16 MiB on, round to 2 MiB
constexpr size_t kLargeStep = size_t(2) << 20;

std::string formatBytes(size_t bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  const double b = static_cast<double>(bytes);
  if (b >= 1073741824.0) s << b / 1073741824.0 << " GiB";
  else if (b >= 1048576.0) s << b / 1048576.0 << " MiB";
  else if (b >= 1024.0) s << b / 1024.0 << " KiB";
  else s << bytes << " B";
  return s.str();
}

}  // namespace

size_t CachingAllocator::roundSize(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  if (bytes >= kLargeBlock) return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
  // Four size classes per power of two: at most 25 % of a block is unused.
  int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));
  size_t step = (size_t(1) << log2) / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = roundSize(bytes);
  void* ptr = nullptr;
  auto it = cached_.find(size);
  if (it != cached_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    stats_.cachedBytes -= size;
    stats_.cachedBlocks -= 1;
    stats_.cacheHits += 1;
  } else {
    requireDevice();
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cache back and try once more
      emptyCache();
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      std::ostringstream s;
      s << "CUDA out of memory: asked for " << formatBytes(bytes) << " (" << bytes << " bytes, a block of " << size
        << "), but only " << formatBytes(freeBytes) << " of " << formatBytes(totalBytes)
        << " is free on the device; this process holds " << formatBytes(stats_.allocatedBytes)
        << " in live tensors (the cache was already emptied)";
      throw OutOfMemory(s.str());
    }
    check(err, ("in cudaMalloc of " + std::to_string(size) + " bytes").c_str());
    stats_.reservedBytes += size;
    stats_.cudaMallocCalls += 1;
  }
  live_.emplace(ptr, Live{size, bytes});
  if (capturing_) captured_.insert(ptr);
  stats_.allocatedBytes += size;
  stats_.requestedBytes += bytes;
  stats_.liveBlocks += 1;
  if (stats_.allocatedBytes > stats_.peakAllocatedBytes) stats_.peakAllocatedBytes = stats_.allocatedBytes;
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  auto it = live_.find(ptr);
  if (it == live_.end()) {
    std::ostringstream s;
    s << "cuda free: " << ptr << " is not a live block of this allocator (freed twice?)";
    fail(s.str());
  }
  const Live block = it->second;
  live_.erase(it);
  const auto owner = poolOf_.find(ptr);
  if (owner != poolOf_.end()) pools_[owner->second].free.emplace_back(ptr, block.blockSize);
  else cached_[block.blockSize].push_back(ptr);
  stats_.allocatedBytes -= block.blockSize;
  stats_.requestedBytes -= block.requested;
  stats_.liveBlocks -= 1;
  stats_.cachedBytes += block.blockSize;
  stats_.cachedBlocks += 1;
}

void CachingAllocator::emptyCache() {
  if (stats_.cachedBlocks == 0) return;
  // Queued kernels may still read blocks that were freed after their launch.
  check(cudaStreamSynchronize(stream()), "while emptying the memory cache");
  for (auto& [size, blocks] : cached_) {
    for (void* ptr : blocks) {
      check(cudaFree(ptr), "in cudaFree");
      stats_.reservedBytes -= size;
      stats_.cudaFreeCalls += 1;
      stats_.cachedBytes -= size;
      stats_.cachedBlocks -= 1;
    }
    blocks.clear();
  }
  cached_.clear();  // blocks freed into a graph's pool stay reserved until the graph is destroyed
}

AllocatorStats CachingAllocator::stats() const { return stats_; }

void CachingAllocator::beginCapture() {
  capturing_ = true;
  captured_.clear();
}

int CachingAllocator::endCapture() {
  capturing_ = false;
  const int id = nextPool_++;
  Pool& pool = pools_[id];
  pool.blocks.swap(captured_);
  for (void* ptr : pool.blocks) poolOf_[ptr] = id;
  // Captured blocks freed during the capture sit in the shared cache: move them to the pool.
  for (auto& [size, blocks] : cached_) {
    auto kept = blocks.begin();
    for (void* ptr : blocks) {
      if (pool.blocks.count(ptr)) pool.free.emplace_back(ptr, size);
      else *kept++ = ptr;
    }
    blocks.erase(kept, blocks.end());
  }
  return id;
}

void CachingAllocator::releasePool(int id) {
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  for (void* ptr : it->second.blocks) poolOf_.erase(ptr);
  // Blocks still held by tensors return to the cache when those are freed.
  for (const auto& [ptr, size] : it->second.free) cached_[size].push_back(ptr);
  pools_.erase(it);
}

CachingAllocator& allocator() {
  static CachingAllocator instance;
  return instance;
}

}  // namespace blora
