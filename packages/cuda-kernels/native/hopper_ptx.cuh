// Inline-PTX wrappers for Hopper's asynchronous data path (sm_90a): mbarriers, bulk tensor
// copies (TMA), warpgroup MMA (wgmma) with shared-memory matrix descriptors, and setmaxnreg.
// Everything here exists only where __CUDA_ARCH_FEAT_SM90_ALL is defined (the sm_90a target);
// other targets see none of it, so callers guard their uses the same way.
#pragma once

#include <cuda.h>  // CUtensorMap (a type only: the driver is reached through the runtime)

#include <cstdint>

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace blora {
namespace hopper {

__device__ __forceinline__ uint32_t sharedAddress(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// --- mbarriers: a phase completes when `count` arrivals and every expected transaction byte
// have been seen; waiters name the parity of the phase they wait for. ---

__device__ __forceinline__ void mbarrierInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes the initialized barriers visible to the copy engine (the async proxy).
__device__ __forceinline__ void fenceBarrierInit() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

// One arrival that also announces `bytes` of copies that will complete on this barrier.
__device__ __forceinline__ void mbarrierArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbarrierArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Spins until the phase of parity `parity` has completed. A fresh barrier is in phase 0, so
// waiting for parity 1 returns at once (the phase before it counts as complete).
__device__ __forceinline__ void mbarrierWait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

// Makes this thread's earlier shared-memory stores visible to the async proxy (wgmma reads
// operands through it): needed between st.shared of an operand and the arrival that hands the
// stage to the MMAs.
__device__ __forceinline__ void fenceProxyAsyncShared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// One 16-byte store to shared memory.
__device__ __forceinline__ void storeShared16(uint32_t address, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

// --- Bulk tensor copies: the box of the tensor map at the given element coordinates
// (innermost first) lands in shared memory, swizzled as the map says. Out-of-bounds elements
// are zero-filled and still count toward the barrier's transaction bytes. ---

__device__ __forceinline__ void tmaLoad2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          dst),
      "l"(map), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}

__device__ __forceinline__ void tmaLoad3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(dst),
      "l"(map), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

__device__ __forceinline__ void prefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
}

// --- Register reallocation between warpgroups (needs a register cap at kernel entry). ---

template <int Registers>
__device__ __forceinline__ void releaseRegisters() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

template <int Registers>
__device__ __forceinline__ void claimRegisters() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

// --- Warpgroup MMA. ---

// Shared-memory matrix descriptor of a 128-byte-swizzled operand: start address, leading and
// stride byte offsets (each >> 4, 14 bits) and swizzle mode 1 (128 B) in bits 62-63. The
// base-offset field stays 0: every swizzle atom starts on a 1024-byte boundary.
__device__ __forceinline__ uint64_t swizzled128Descriptor(uint32_t address, uint32_t leadingBytes, uint32_t strideBytes) {
  return uint64_t((address & 0x3FFFF) >> 4) | (uint64_t((leadingBytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t((strideBytes & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}

// Orders earlier register accesses (e.g. zeroed accumulators) before the next wgmma.
__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

// Waits until at most `Pending` committed wgmma groups of this warpgroup are unfinished.
template <int Pending>
__device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

// Tells the compiler the accumulators may change here (the asynchronous MMA writes them
// behind its back), so no access to them moves across the wait or fence next to it.
template <int R>
__device__ __forceinline__ void fenceAccumulators(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// The accumulator operand lists of the m64n128k16 (64 floats) and m64n256k16 (128 floats)
// forms, written out because inline PTX needs one operand per register.
#define BLORA_WGMMA_REGS_64 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define BLORA_WGMMA_OUTS_64 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define BLORA_WGMMA_REGS_128 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define BLORA_WGMMA_OUTS_128 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
  "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
  "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
  "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
  "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
  "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
  "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
  "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
  "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

// d (64 x N, float32, in the m64nNk16 fragment layout) += A (64 x 16) * B (16 x N), both read
// from shared memory through descriptors. TransA / TransB: false for K-major, true for M- / N-
// major operands. Bf16 picks bfloat16 inputs, otherwise float16. The scale-d predicate is
// always 1 (accumulate): callers zero the accumulators first.
#define BLORA_WGMMA_ASM(SHAPE, TYPE, REGS, OUTS, DESC_A, DESC_B, SCALE_D, TRANS_A, TRANS_B)                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" SCALE_D ", 0;\nwgmma.mma_async.sync.aligned." SHAPE      \
               ".f32." TYPE "." TYPE " {" REGS "}, %" DESC_A ", %" DESC_B ", p, 1, 1, %" TRANS_A ", %" TRANS_B \
               ";\n}\n"                                                                                       \
               : OUTS                                                                                         \
               : "l"(descA), "l"(descB), "r"(1), "n"(int(TransA)), "n"(int(TransB)))

template <int N, bool Bf16, bool TransA, bool TransB>
__device__ __forceinline__ void wgmma(float (&d)[N / 2], uint64_t descA, uint64_t descB) {
  static_assert(N == 128 || N == 256, "wgmma is wrapped for N = 128 and 256");
  if constexpr (N == 256 && Bf16) {
    BLORA_WGMMA_ASM("m64n256k16", "bf16", BLORA_WGMMA_REGS_128, BLORA_WGMMA_OUTS_128, "128", "129", "130", "131", "132");
  } else if constexpr (N == 256) {
    BLORA_WGMMA_ASM("m64n256k16", "f16", BLORA_WGMMA_REGS_128, BLORA_WGMMA_OUTS_128, "128", "129", "130", "131", "132");
  } else if constexpr (Bf16) {
    BLORA_WGMMA_ASM("m64n128k16", "bf16", BLORA_WGMMA_REGS_64, BLORA_WGMMA_OUTS_64, "64", "65", "66", "67", "68");
  } else {
    BLORA_WGMMA_ASM("m64n128k16", "f16", BLORA_WGMMA_REGS_64, BLORA_WGMMA_OUTS_64, "64", "65", "66", "67", "68");
  }
}

#undef BLORA_WGMMA_ASM
#undef BLORA_WGMMA_REGS_64
#undef BLORA_WGMMA_OUTS_64
#undef BLORA_WGMMA_REGS_128
#undef BLORA_WGMMA_OUTS_128

}  // namespace hopper
}  // namespace blora

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
