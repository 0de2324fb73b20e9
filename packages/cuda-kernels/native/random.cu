// Random tensors from Philox-4x32-10, following the specification in @blora/tensor
// (philox.ts for the block function, ops/random.ts for how words become values), so every
// element equals the CPU's: uniform, integer and Bernoulli values bit for bit; normal values
// up to the last bit of the float64 log and cos (CUDA's and the JavaScript engine's libraries
// agree to about 1 ulp of float64, so float32 results match except in rare rounding ties).
// One thread computes one counter block and writes the elements that use its words.
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key increments
constexpr double kTwoPowM24 = 1.0 / 16777216.0;

// The four words of counter block `block` ([block mod 2^32, block / 2^32, 0, 0]) under key (k0, k1).
__device__ __forceinline__ uint4 philoxBlock(uint64_t block, uint32_t k0, uint32_t k1) {
  uint32_t c0 = uint32_t(block), c1 = uint32_t(block >> 32), c2 = 0, c3 = 0;
#pragma unroll
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint32_t hi0 = __umulhi(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = __umulhi(kM1, c2), lo1 = kM1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return make_uint4(c0, c1, c2, c3);
}

__device__ __forceinline__ uint32_t wordOf(const uint4& w, int j) { return j == 0 ? w.x : j == 1 ? w.y : j == 2 ? w.z : w.w; }

// k * 2^-24 (k < 2^24) in each float dtype; the 16-bit types round toward zero so the value stays below 1.
template <typename T>
struct Uniform;
template <>
struct Uniform<float> {
  __device__ static float of(uint32_t k) { return float(k) * float(kTwoPowM24); }
};
template <>
struct Uniform<double> {
  __device__ static double of(uint32_t k) { return double(k) * kTwoPowM24; }
};
template <>
struct Uniform<__half> {
  __device__ static __half of(uint32_t k) {
    if (k < 1024) return __ushort_as_half(uint16_t(k));  // subnormal: k * 2^-24 is the pattern k
    const int lead = 31 - __clz(k);                       // 10..23
    return __ushort_as_half(uint16_t(((lead - 9) << 10) | ((k >> (lead - 10)) & 0x3ffu)));
  }
};
template <>
struct Uniform<__nv_bfloat16> {
  __device__ static __nv_bfloat16 of(uint32_t k) {
    return __ushort_as_bfloat16(uint16_t(__float_as_uint(float(k) * float(kTwoPowM24)) >> 16));
  }
};

template <typename T>
__global__ void uniformKernel(T* out, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  BLORA_GRID_STRIDE_LOOP(b, blocks) {
    const uint4 w = philoxBlock(offset + uint64_t(b), k0, k1);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t i = 4 * b + j;
      if (i < n) out[i] = Uniform<T>::of(wordOf(w, j) >> 8);
    }
  }
}

// Box-Muller in float64 on words (a, b): sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1], u2 in [0, 1).
__device__ __forceinline__ double boxMuller(uint32_t a, uint32_t b) {
  const double u1 = double((a >> 8) + 1) * kTwoPowM24;
  const double u2 = double(b >> 8) * kTwoPowM24;
  const double twoPi = 2.0 * 3.141592653589793;  // 2 * Math.PI, exact in float64
  return sqrt(-2.0 * log(u1)) * cos(twoPi * u2);
}

template <typename T>
__global__ void normalKernel(T* out, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset) {
  const int64_t blocks = (n + 1) / 2;
  BLORA_GRID_STRIDE_LOOP(b, blocks) {
    const uint4 w = philoxBlock(offset + uint64_t(b), k0, k1);
    out[2 * b] = Num<T>::fromDouble(boxMuller(w.x, w.y));
    if (2 * b + 1 < n) out[2 * b + 1] = Num<T>::fromDouble(boxMuller(w.z, w.w));
  }
}

template <typename T>
__global__ void intKernel(T* out, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset, long long low, uint64_t range) {
  const int64_t blocks = (n + 3) / 4;
  const bool full = range == (uint64_t(1) << 32);
  BLORA_GRID_STRIDE_LOOP(b, blocks) {
    const uint4 w = philoxBlock(offset + uint64_t(b), k0, k1);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t i = 4 * b + j;
      if (i >= n) break;
      const uint32_t word = wordOf(w, j);
      const uint32_t pick = full ? word : __umulhi(word, uint32_t(range));
      out[i] = Num<T>::store(low + static_cast<long long>(pick));
    }
  }
}

template <typename T>
__global__ void bernoulliKernel(T* out, int64_t n, uint32_t k0, uint32_t k1, uint64_t offset, uint32_t threshold) {
  const int64_t blocks = (n + 3) / 4;
  BLORA_GRID_STRIDE_LOOP(b, blocks) {
    const uint4 w = philoxBlock(offset + uint64_t(b), k0, k1);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t i = 4 * b + j;
      if (i < n) out[i] = Num<T>::fromDouble((wordOf(w, j) >> 8) < threshold ? 1.0 : 0.0);
    }
  }
}

// Threads for `blocks` counter blocks.
unsigned gridFor(int64_t blocks) { return elementwiseBlocks(blocks); }

void requireOutput(const char* op, const TensorArg& out) { requireContiguous(op, out, "output"); }

}  // namespace

void launchRandUniform(const TensorArg& out, const PhiloxSeed& seed) {
  const char* op = "randUniform";
  requireOutput(op, out);
  const int64_t n = out.numel();
  if (n == 0) return;
  visitDType<DTypeSet::Float>(out.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    uniformKernel<T><<<gridFor((n + 3) / 4), kElementwiseThreads, 0, stream()>>>(reinterpret_cast<T*>(out.first()), n,
                                                                               seed.k0, seed.k1, seed.offset);
  });
  checkLaunch(op);
}

void launchRandNormal(const TensorArg& out, const PhiloxSeed& seed) {
  const char* op = "randNormal";
  requireOutput(op, out);
  const int64_t n = out.numel();
  if (n == 0) return;
  visitDType<DTypeSet::Float>(out.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    normalKernel<T><<<gridFor((n + 1) / 2), kElementwiseThreads, 0, stream()>>>(reinterpret_cast<T*>(out.first()), n,
                                                                              seed.k0, seed.k1, seed.offset);
  });
  checkLaunch(op);
}

void launchRandInt(const TensorArg& out, const PhiloxSeed& seed, int64_t low, uint64_t range) {
  const char* op = "randInt";
  requireOutput(op, out);
  if (range < 1 || range > (uint64_t(1) << 32)) fail(std::string(op) + ": the range high - low must be in [1, 2^32]");
  const int64_t n = out.numel();
  if (n == 0) return;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    intKernel<T><<<gridFor((n + 3) / 4), kElementwiseThreads, 0, stream()>>>(reinterpret_cast<T*>(out.first()), n, seed.k0,
                                                                           seed.k1, seed.offset, low, range);
  };
  switch (out.dtype) {
    case DType::Int32: launch(TypeTag<int32_t>{}); break;
    case DType::Int8: launch(TypeTag<int8_t>{}); break;
    case DType::UInt8: launch(TypeTag<uint8_t>{}); break;
    default: fail(std::string(op) + ": dtype " + dtypeName(out.dtype) + " is not an integer dtype (int32, int8, uint8)");
  }
  checkLaunch(op);
}

void launchRandBernoulli(const TensorArg& out, const PhiloxSeed& seed, uint32_t threshold) {
  const char* op = "randBernoulli";
  requireOutput(op, out);
  const int64_t n = out.numel();
  if (n == 0) return;
  visitDType<DTypeSet::All>(out.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    bernoulliKernel<T><<<gridFor((n + 3) / 4), kElementwiseThreads, 0, stream()>>>(reinterpret_cast<T*>(out.first()), n,
                                                                                 seed.k0, seed.k1, seed.offset, threshold);
  });
  checkLaunch(op);
}

}  // namespace blora
