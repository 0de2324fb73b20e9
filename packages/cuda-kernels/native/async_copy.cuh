// cp.async copies from global to shared memory (sm_80 and newer; empty in the host pass and on
// older GPUs), shared by the kernels that stage tiles in shared memory.
#pragma once

#include <cstdint>

namespace blora {

__device__ __forceinline__ uint32_t smemAddress(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// 16-byte global -> shared copy of which the first `bytes` (0 or 16) are read, the rest zeroed.
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void* src, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
#endif
}

// 4-byte global -> shared copy (zero-filled when `bytes` is 0).
__device__ __forceinline__ void cpAsync4(uint32_t dst, const void* src, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
#endif
}

__device__ __forceinline__ void cpAsyncCommit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `Pending` of the copy groups this thread committed are still in flight.
template <int Pending>
__device__ __forceinline__ void cpAsyncWaitPending() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

// Waits until every copy this thread committed has landed.
__device__ __forceinline__ void cpAsyncWaitAll() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

}  // namespace blora
