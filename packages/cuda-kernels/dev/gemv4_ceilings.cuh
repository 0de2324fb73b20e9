// The GEMV harness's ceilings (dev/gemv4.cu): kernels that only read a weight's bytes, launched as
// a GEMV is or waiting for the kernel before, or staging the bytes in shared memory before that
// wait; and the programmatic dependent launch they share.
#pragma once

#include "../native/async_copy.cuh"

namespace gemv_dev {

using namespace blora;

// The ceiling: read every 16-byte word of codes, scales and offsets (c; none for NF4) once, fold
// them, write one word per block.
// Trigger: lets the next launch (a programmatic dependent launch) start at once, as the GEMV
// launches of the addon do, so that the launch gap and ramp overlap this one's tail. Wait: first
// waits for the kernel before to complete (nothing is read earlier), as every GEMV does before it
// computes.
template <bool Trigger = false, bool Wait = false>
__global__ void readOnlyKernel(const uint4* a, int64_t na, const uint4* b, int64_t nb, const uint4* c, int64_t nc, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (Wait) asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if constexpr (Trigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < na; i += stride) {
    const uint4 v = __ldg(a + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nb; i += stride) {
    const uint4 v = __ldg(b + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nc; i += stride) {
    const uint4 v = __ldg(c + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
}

// A bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) into shared memory,
// completing on the mbarrier at `bar` (sm_90).
__device__ __forceinline__ void bulkCopyToShared(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
#endif
}

// Makes the mbarrier at `bar` expect `bytes` of copies from one arrival (this thread's, now).
__device__ __forceinline__ void stagingBarrierExpect(uint32_t bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}

// Waits until the copies of stagingBarrierExpect have landed (after a __syncthreads that makes the
// barrier's initialization visible).
__device__ __forceinline__ void stagingBarrierWait(uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  for (uint32_t done = 0; !done;) {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar)
                 : "memory");
  }
#endif
}

// The read-only ceiling for a GEMV that holds its weight on chip before waiting: each block copies
// the first `staged` 16-byte words of its share of the bytes (a, b and c split evenly between the
// blocks, in that order) into shared memory with cp.async before it waits for the kernel before,
// reads the rest of its share after the wait, then folds what it staged. EarlyTrigger: lets the
// next launch start before the wait (so its blocks can stage while this one waits and folds);
// otherwise only after it. Only for bytes no kernel in flight writes.
// Bulk: thread 0 stages with bulk copies (the copy engine, one to three a block) instead.
template <bool EarlyTrigger, bool Bulk = false>
__global__ void stagedReadKernel(const uint4* a, int64_t na, const uint4* b, int64_t nb, const uint4* c, int64_t nc, int64_t staged,
                                 uint32_t* sink) {
  extern __shared__ uint4 stage[];
  __shared__ __align__(8) uint64_t bar;
  const int64_t n = na + nb + nc, blocks = gridDim.x;
  const int64_t begin = n * blockIdx.x / blocks, end = n * (blockIdx.x + 1) / blocks;
  const int64_t stagedEnd = min(end, begin + staged);
  auto word = [&](int64_t i) { return i < na ? a + i : i < na + nb ? b + (i - na) : c + (i - na - nb); };
  const uint32_t barAt = smemAddress(&bar);
  if constexpr (Bulk) {
    if (threadIdx.x == 0) {
      stagingBarrierExpect(barAt, uint32_t((stagedEnd - begin) * 16));
      // The staged words, cut where they pass from a to b and from b to c.
      for (int64_t i = begin; i < stagedEnd;) {
        const int64_t limit = i < na ? na : i < na + nb ? na + nb : n;
        const int64_t count = min(stagedEnd, limit) - i;
        bulkCopyToShared(smemAddress(stage + (i - begin)), word(i), uint32_t(count * 16), barAt);
        i += count;
      }
    }
  } else {
    for (int64_t i = begin + threadIdx.x; i < stagedEnd; i += blockDim.x) cpAsync16(smemAddress(stage + (i - begin)), word(i), 16);
    cpAsyncCommit();
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (EarlyTrigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if constexpr (!EarlyTrigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  for (int64_t i = stagedEnd + threadIdx.x; i < end; i += blockDim.x) {
    const uint4 v = __ldg(word(i));
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if constexpr (Bulk) {
    __syncthreads();  // the barrier's initialization
    stagingBarrierWait(barAt);
  }
  cpAsyncWaitAll();  // each thread folds the words it staged itself
  for (int64_t i = begin + threadIdx.x; i < stagedEnd; i += blockDim.x) {
    const uint4 v = stage[i - begin];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
}

// Queues `kernel` on the harness's stream as a programmatic dependent launch (it may start while the
// kernel before finishes); a failure ends the run.
template <typename... Params, typename... Args>
void launchDependentOrDie(const char* what, void (*kernel)(Params...), unsigned blocks, unsigned threads, size_t sharedBytes, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream();
  cudaLaunchAttribute overlap = {};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &overlap;
  config.numAttrs = 1;
  dev::cudaOrDie(cudaLaunchKernelEx(&config, kernel, args...), what);
}

}  // namespace gemv_dev
