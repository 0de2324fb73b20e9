// Products of a few activation rows by a float32 weight read along its rows, the shape of an
// adapter's products while decoding (x [M, K·λ] with M <= 16; the A product: K = 4096, N = the
// rank; the B product: K = the rank, N = 4096): out[m, n] = Σ_k p[m, k] · w[n, k], with p[m, k]
// the mean of x[m, kλ .. kλ + λ - 1] (x itself for λ = 1) cast to float32 as it is read, the
// products accumulated in float32. The tiled GEMM would take a cast pass, a split over K and a
// reduction pass for the A product; here each output feature is one to eight warps (by K), lanes
// striding over K (coalesced reads of w and x), all rows at once, then warp and block sums.
#include <type_traits>

#include "block_reduce.cuh"
#include "common.h"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr int kSkinnyWarps = 8;

// Split warps of a block share one output feature (a long K: 8, so that K = 4096 is 16 loads a
// lane), the block holding kSkinnyWarps / Split features; their partial sums meet in shared memory.
template <typename X, int Split>
__global__ void __launch_bounds__(kSkinnyWarps * 32)
    skinnyLinearKernel(const X* x, int64_t xStride, const float* w, int64_t wStride, float* out, int rows, int64_t n, int64_t k,
                       int lambda) {
  constexpr int kFeatures = kSkinnyWarps / Split;
  __shared__ float partial[kSkinnyWarps][kLinearMaxRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = warp / Split, part = warp % Split;
  const int64_t feature = int64_t(blockIdx.x) * kFeatures + slot;
  float acc[kLinearMaxRows] = {};
  if (feature < n) {
    const float* wRow = w + feature * wStride;
    const float inv = 1.f / float(lambda);
    // Unrolled so that several iterations' loads are in flight before their products.
#pragma unroll 4
    for (int64_t c = int64_t(part) * 32 + lane; c < k; c += Split * 32) {
      const float wv = wRow[c];
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
    out[lane * n + feature] = sum;
  }
}

template <typename X, int Split>
void launchSplit(const TensorArg& x, const TensorArg& w, const TensorArg& out, int64_t rows, int64_t n, int64_t k, int64_t lambda) {
  constexpr int kFeatures = kSkinnyWarps / Split;
  const unsigned blocks = unsigned((n + kFeatures - 1) / kFeatures);
  skinnyLinearKernel<X, Split><<<blocks, kSkinnyWarps * 32, 0, stream()>>>(
      reinterpret_cast<const X*>(x.first()), x.strides[0], reinterpret_cast<const float*>(w.first()), w.strides[0],
      reinterpret_cast<float*>(out.first()), int(rows), n, k, int(lambda));
}

}  // namespace

bool launchSkinnyLinear(const TensorArg& x, const TensorArg& w, const TensorArg& out, int64_t lambda) {
  const char* op = "skinnyLinear";
  if (x.rank != 2 || w.rank != 2 || out.rank != 2 || w.dtype != DType::Float32 || out.dtype != DType::Float32) return false;
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
      if (k >= 2048) launchSplit<X, 8>(x, w, out, rows, n, k, lambda);
      else if (k >= 512) launchSplit<X, 4>(x, w, out, rows, n, k, lambda);
      else if (k >= 128) launchSplit<X, 2>(x, w, out, rows, n, k, lambda);
      else launchSplit<X, 1>(x, w, out, rows, n, k, lambda);
    }
  });
  checkLaunch(op);
  return true;
}

}  // namespace blora
