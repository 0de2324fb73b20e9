// Transfers use two pinned staging buffers so that filling one with host data overlaps
// the DMA of the other; pageable JavaScript memory never goes to the driver directly.
#include "transfer.h"

#include <algorithm>
#include <cstring>

#include "common.h"

namespace blora {

namespace {

constexpr size_t kChunk = size_t(4) << 20;  // bytes per staging buffer

struct Staging {
  char* buffer[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};  // the last copy that used each buffer

  void ensure() {
    if (buffer[0]) return;
    requireDevice();
    for (int i = 0; i < 2; i++) {
      check(cudaHostAlloc(reinterpret_cast<void**>(&buffer[i]), kChunk, cudaHostAllocDefault), "allocating pinned staging memory");
      check(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming), "creating a staging event");
    }
  }
};

Staging staging;

}  // namespace

void uploadToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (capturingGraph()) fail("cannot copy host data to the device while a graph is being captured (a replay would not see new values)");
  staging.ensure();
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  int which = 0;
  for (size_t done = 0; done < bytes; done += kChunk, which ^= 1) {
    const size_t n = std::min(kChunk, bytes - done);
    // The buffer's previous DMA must finish before it is overwritten.
    check(cudaEventSynchronize(staging.done[which]), "waiting for a staging buffer");
    std::memcpy(staging.buffer[which], from + done, n);
    check(cudaMemcpyAsync(to + done, staging.buffer[which], n, cudaMemcpyHostToDevice, stream()), "copying host data to the device");
    check(cudaEventRecord(staging.done[which], stream()), "recording a staging event");
  }
}

void downloadToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (capturingGraph()) fail("cannot read device values while a graph is being captured (read them after a replay)");
  staging.ensure();
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  // Queue chunk i+1 into one buffer while chunk i is copied out of the other.
  auto queue = [&](size_t start, int which) {
    const size_t n = std::min(kChunk, bytes - start);
    check(cudaMemcpyAsync(staging.buffer[which], from + start, n, cudaMemcpyDeviceToHost, stream()), "copying device data to the host");
    check(cudaEventRecord(staging.done[which], stream()), "recording a staging event");
  };
  queue(0, 0);
  int which = 0;
  for (size_t start = 0; start < bytes; start += kChunk, which ^= 1) {
    if (start + kChunk < bytes) queue(start + kChunk, which ^ 1);
    cudaError_t err = cudaEventSynchronize(staging.done[which]);
    if (err != cudaSuccess) {
      throwCuda(err, "while reading results back (a kernel queued before the copy failed; set CUDA_LAUNCH_BLOCKING=1 to report it at its launch)");
    }
    std::memcpy(to + start, staging.buffer[which], std::min(kChunk, bytes - start));
  }
}

}  // namespace blora
