// Products of a few activation rows by a weight read along its rows, the shape of an adapter's
// products while decoding (x [M, K·λ] with M <= 16, a float32 weight; the A product: K = 4096,
// N = the rank; the B product: K = the rank, N = 4096) and of a 16-bit model's one-token products
// (a bfloat16 / float16 weight of x's dtype, λ = 1, e.g. the lm_head): out[m, n] = Σ_k p[m, k] ·
// w[n, k], with p[m, k] the mean of x[m, kλ .. kλ + λ - 1] (x itself for λ = 1) cast to float32 as
// it is read, the products accumulated in float32 and rounded once to the output's dtype. The
// tiled GEMM would take a cast pass, a split over K and a reduction pass for the A product; here
// each output feature is one to eight warps (by K, fewer where the features alone fill the GPU),
// lanes striding over K (coalesced reads of w and x: four values a load where aligned and λ is 1,
// 2 or 4, eight 16-bit values a 16-byte load), all rows at once, then warp and block sums.
#include <type_traits>

#include "block_reduce.cuh"
#include "common.h"
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr int kSkinnyWarps = 8;

// The output's type: float32 with a float32 weight (the adapters' products), else x's own.
template <typename X, typename W>
using OutputOf = std::conditional_t<std::is_same_v<W, float>, float, X>;

// Four consecutive values of x as floats: one 16-byte load for float32, one 8-byte load for the
// 16-bit types (element 0 in the low half of the first word).
template <typename X>
__device__ __forceinline__ float4 load4(const X* p);
template <>
__device__ __forceinline__ float4 load4<float>(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
template <>
__device__ __forceinline__ float4 load4<__nv_bfloat16>(const __nv_bfloat16* p) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u), __uint_as_float(v.y << 16),
                     __uint_as_float(v.y & 0xffff0000u));
}
template <>
__device__ __forceinline__ float4 load4<__half>(const __half* p) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&v.x));
  const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&v.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// Eight consecutive 16-bit values as floats: one 16-byte load.
template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  static_assert(sizeof(T) == 2, "eight 16-bit values a load");
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      v[2 * i] = __uint_as_float(words[i] << 16);
      v[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    } else {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
}

// Four consecutive pooled values from 4λ values of x at p: each the sum of its run in order,
// times 1/λ (as the scalar loop computes them).
template <typename X, int Lambda>
__device__ __forceinline__ float4 loadPooled4(const X* p, float inv) {
  if constexpr (Lambda == 1) {
    return load4<X>(p);
  } else {
    float raw[4 * Lambda];
#pragma unroll
    for (int j = 0; j < Lambda; j++) {
      const float4 a = load4<X>(p + 4 * j);
      raw[4 * j] = a.x;
      raw[4 * j + 1] = a.y;
      raw[4 * j + 2] = a.z;
      raw[4 * j + 3] = a.w;
    }
    float v[4];
#pragma unroll
    for (int q = 0; q < 4; q++) {
      float sum = raw[q * Lambda];
#pragma unroll
      for (int e = 1; e < Lambda; e++) sum += raw[q * Lambda + e];
      v[q] = sum * inv;
    }
    return make_float4(v[0], v[1], v[2], v[3]);
  }
}

// Split warps of a block share one output feature (a long K: 8), the block holding
// kSkinnyWarps / Split features; their partial sums meet in shared memory. VecLambda 1, 2 or 4
// (that λ, aligned rows, K % 4 == 0): each lane takes 4 consecutive k a step, with vector loads;
// 8 (λ = 1, x and w 16-bit, 16-byte aligned rows, K % 8 == 0): 8 consecutive k a step, one
// 16-byte load of each; 0: one k a step, any λ.
template <typename X, typename W, int Split, int VecLambda>
__global__ void __launch_bounds__(kSkinnyWarps * 32)
    skinnyLinearKernel(const X* x, int64_t xStride, const W* w, int64_t wStride, OutputOf<X, W>* out, int rows, int64_t n, int64_t k,
                       int lambda) {
  dependentKernelBegins();
  constexpr int kFeatures = kSkinnyWarps / Split;
  __shared__ float partial[kSkinnyWarps][kLinearMaxRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = warp / Split, part = warp % Split;
  const int64_t feature = int64_t(blockIdx.x) * kFeatures + slot;
  float acc[kLinearMaxRows] = {};
  if constexpr (VecLambda == 8) {
    if (feature < n) {
      const W* wRow = w + feature * wStride;
#pragma unroll 2
      for (int64_t c = (int64_t(part) * 32 + lane) * 8; c < k; c += Split * 32 * 8) {
        float wv[8];
        load8(wRow + c, wv);
#pragma unroll
        for (int m = 0; m < kLinearMaxRows; m++) {
          if (m >= rows) break;
          float xv[8];
          load8(x + m * xStride + c, xv);
#pragma unroll
          for (int e = 0; e < 8; e++) acc[m] = fmaf(xv[e], wv[e], acc[m]);
        }
      }
    }
  } else if constexpr (VecLambda > 0) {
    if (feature < n) {
      const W* wRow = w + feature * wStride;
      const float inv = 1.f / float(VecLambda);
#pragma unroll 2
      for (int64_t c = (int64_t(part) * 32 + lane) * 4; c < k; c += Split * 32 * 4) {
        const float4 wv = load4<W>(wRow + c);
#pragma unroll
        for (int m = 0; m < kLinearMaxRows; m++) {
          if (m >= rows) break;
          const float4 xv = loadPooled4<X, VecLambda>(x + m * xStride + c * VecLambda, inv);
          acc[m] = fmaf(xv.x, wv.x, fmaf(xv.y, wv.y, fmaf(xv.z, wv.z, fmaf(xv.w, wv.w, acc[m]))));
        }
      }
    }
  } else {
    if (feature < n) {
      const W* wRow = w + feature * wStride;
      const float inv = 1.f / float(lambda);
      // Unrolled so that several iterations' loads are in flight before their products.
#pragma unroll 4
      for (int64_t c = int64_t(part) * 32 + lane; c < k; c += Split * 32) {
        const float wv = Num<W>::load(wRow[c]);
#pragma unroll
        for (int m = 0; m < kLinearMaxRows; m++) {
          if (m >= rows) break;
          const X* run = x + m * xStride + c * lambda;
          float p = Num<X>::load(run[0]);
          for (int e = 1; e < lambda; e++) p += Num<X>::load(run[e]);
          acc[m] = fmaf(lambda == 1 ? p : p * inv, wv, acc[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kLinearMaxRows; m++) {
    if (m >= rows) break;
    const float sum = warpReduce(acc[m], [](float a, float b) { return a + b; });
    if (lane == 0) partial[warp][m] = sum;
  }
  __syncthreads();
  if (part == 0 && feature < n && lane < rows) {
    float sum = 0.f;
#pragma unroll
    for (int p = 0; p < Split; p++) sum += partial[slot * Split + p][lane];
    out[lane * n + feature] = Num<OutputOf<X, W>>::store(sum);
  }
}

template <typename X, typename W, int Split, int VecLambda>
void launchSplit(const TensorArg& x, const TensorArg& w, const TensorArg& out, int64_t rows, int64_t n, int64_t k, int64_t lambda) {
  constexpr int kFeatures = kSkinnyWarps / Split;
  const unsigned blocks = unsigned((n + kFeatures - 1) / kFeatures);
  launchDependent("skinnyLinear", skinnyLinearKernel<X, W, Split, VecLambda>, blocks, kSkinnyWarps * 32, 0,
                  reinterpret_cast<const X*>(x.first()), x.strides[0], reinterpret_cast<const W*>(w.first()), w.strides[0],
                  reinterpret_cast<OutputOf<X, W>*>(out.first()), int(rows), n, k, int(lambda));
}

}  // namespace

bool launchSkinnyLinear(const TensorArg& x, const TensorArg& w, const TensorArg& out, int64_t lambda) {
  const char* op = "skinnyLinear";
  if (x.rank != 2 || w.rank != 2 || out.rank != 2) return false;
  // A float32 weight and output (any λ), or a 16-bit weight and output of x's dtype (λ = 1).
  const bool halfWeight = (x.dtype == DType::BFloat16 || x.dtype == DType::Float16) && w.dtype == x.dtype && out.dtype == x.dtype && lambda == 1;
  if (!halfWeight && (w.dtype != DType::Float32 || out.dtype != DType::Float32)) return false;
  const int64_t rows = x.shape[0], n = w.shape[0], k = w.shape[1];
  if (rows < 1 || rows > kLinearMaxRows || lambda < 1 || lambda > 64 || x.shape[1] != k * lambda || out.shape[0] != rows ||
      out.shape[1] != n || n < 1 || k < 1) {
    return false;
  }
  if ((x.strides[1] != 1 && x.shape[1] > 1) || (w.strides[1] != 1 && k > 1) || !out.isContiguous()) return false;
  if (x.dtype == DType::Float64 || x.dtype == DType::Int32 || x.dtype == DType::Int8 || x.dtype == DType::UInt8) return false;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using X = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<X, double>) {
      // Vector loads need λ 1, 2 or 4, whole groups of 4 along K and rows that start on their boundary.
      const size_t wSize = halfWeight ? sizeof(X) : sizeof(float);
      const bool vec = (lambda == 1 || lambda == 2 || lambda == 4) && k % 4 == 0 && (rows == 1 || x.strides[0] % 4 == 0) &&
                       w.strides[0] % 4 == 0 && reinterpret_cast<uintptr_t>(x.first()) % (4 * sizeof(X)) == 0 &&
                       reinterpret_cast<uintptr_t>(w.first()) % (4 * wSize) == 0;
      // 16-bit x and w with rows on 16-byte boundaries: eight values a load.
      const bool vec8 = halfWeight && k % 8 == 0 && (rows == 1 || x.strides[0] % 8 == 0) && w.strides[0] % 8 == 0 &&
                        reinterpret_cast<uintptr_t>(x.first()) % 16 == 0 && reinterpret_cast<uintptr_t>(w.first()) % 16 == 0;
      // About four steps a lane over K (one warp a feature below 256), but no more warps a feature
      // than it takes to fill the GPU: many features (an lm_head's 32000) fill it one warp each.
      const int64_t reach = vec8 ? k / 8 : vec ? k / 4 : k;
      int split = reach >= 1024 ? 8 : reach >= 512 ? 4 : reach >= 128 ? 2 : 1;
      const int64_t fullGpu = int64_t(smCount()) * 64;  // warps resident at once
      while (split > 1 && n * (split / 2) >= fullGpu) split /= 2;
      auto launch = [&](auto weightTag, auto vecTag) {
        using W = typename decltype(weightTag)::type;
        constexpr int V = decltype(vecTag)::value;
        if (split == 8) launchSplit<X, W, 8, V>(x, w, out, rows, n, k, lambda);
        else if (split == 4) launchSplit<X, W, 4, V>(x, w, out, rows, n, k, lambda);
        else if (split == 2) launchSplit<X, W, 2, V>(x, w, out, rows, n, k, lambda);
        else launchSplit<X, W, 1, V>(x, w, out, rows, n, k, lambda);
      };
      if constexpr (!std::is_same_v<X, float>) {
        if (halfWeight) {
          if (vec8) launch(TypeTag<X>{}, std::integral_constant<int, 8>{});
          else if (vec) launch(TypeTag<X>{}, std::integral_constant<int, 1>{});
          else launch(TypeTag<X>{}, std::integral_constant<int, 0>{});
          return;
        }
      }
      if (!vec) launch(TypeTag<float>{}, std::integral_constant<int, 0>{});
      else if (lambda == 1) launch(TypeTag<float>{}, std::integral_constant<int, 1>{});
      else if (lambda == 2) launch(TypeTag<float>{}, std::integral_constant<int, 2>{});
      else launch(TypeTag<float>{}, std::integral_constant<int, 4>{});
    }
  });
  checkLaunch(op);
  return true;
}

}  // namespace blora
