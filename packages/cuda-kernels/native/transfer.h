// Host <-> device copies through a pinned staging buffer.
#pragma once

#include <cstddef>

namespace blora {

// Queues a copy of `bytes` host bytes to device memory at `dst`. Returns once `src` may be
// reused: the data is in pinned staging memory, the device copy may still be running.
void uploadToDevice(void* dst, const void* src, size_t bytes);

// Copies `bytes` from device memory at `src` into host memory at `dst`, after all queued
// work on the stream (a synchronization point).
void downloadToHost(void* dst, const void* src, size_t bytes);

}  // namespace blora
