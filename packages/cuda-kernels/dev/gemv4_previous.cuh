// The tensor-core GEMV the addon shipped before native/quant_gemv_tc.cuh (one 16-byte load of 32
// codes per lane and row, every weight decoded to table[code] * absmax before its MMA), kept
// here only to time the two side by side.
#pragma once
#include "../native/quant_gemm.cuh"

namespace gemv_previous {
using namespace blora;
constexpr int kTcWarps = 4;        // warps per block, all on the same 16 weight rows
constexpr int kTcChunkCols = 128;  // input columns a warp covers per chunk: 4 lanes x 32 codes

// 32-bit word p (activation pair p) of four 16-byte loads.
__device__ __forceinline__ uint32_t wordOf(const uint4 (&v)[4], int p) {
  const uint4& q = v[p >> 2];
  return (p & 3) == 0 ? q.x : (p & 3) == 1 ? q.y : (p & 3) == 2 ? q.z : q.w;
}

// Block b computes y[:, 16b .. 16b + 16). Lane (g = lane / 4, t = lane % 4) of a warp reads, for
// each of its chunks, the 32 codes at columns c = 128 * chunk + 32 t of rows 16b + g and
// 16b + g + 8, and the same 32 columns of activation rows 8 j + g (j < NTiles). MMA step s uses
// columns c + 4 s .. c + 4 s + 3 as the k slots 2t, 2t + 1, 2t + 8, 2t + 9 of both operands.
template <typename T, typename Source, int NTiles, int Unroll>
__global__ void __launch_bounds__(kTcWarps * 32)
    tcGemvKernel(const T* x, int64_t xStride, int rows, Source w, const float* table, T* y, int64_t outFeatures,
                 int64_t in) {
  __shared__ float codeValues[16];
  __shared__ float partial[kTcWarps][16][16];
  loadCodeValues(codeValues, table);
  __syncthreads();
  const CodeValues values{codeValues};
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int64_t r0 = int64_t(blockIdx.x) * 16;
  const int64_t rowA = r0 + g, rowB = r0 + g + 8;
  const bool hasA = rowA < outFeatures, hasB = rowB < outFeatures;
  const int64_t chunks = (in + kTcChunkCols - 1) / kTcChunkCols;
  float acc[NTiles][4] = {};
  for (int64_t base = warp; base < chunks; base += int64_t(kTcWarps) * Unroll) {
    // Every load of this round is issued before any decode, so they are in flight together.
    typename Source::Chunk ca[Unroll], cb[Unroll];
    uint4 xv[Unroll][NTiles][4];
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      const int64_t chunk = base + int64_t(u) * kTcWarps;
      const int64_t c = chunk * kTcChunkCols + 32 * t;
      const bool inRange = chunk < chunks && c < in;
      ca[u] = w.load(rowA, c, inRange && hasA);
      cb[u] = w.load(rowB, c, inRange && hasB);
#pragma unroll
      for (int j = 0; j < NTiles; j++) {
        const int m = 8 * j + g;
        const bool use = inRange && m < rows;
        const T* src = x + (use ? m * xStride + c : 0);
#pragma unroll
        for (int q = 0; q < 4; q++) xv[u][j][q] = use ? load16(src + 8 * q) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      uint32_t a[kChunkPairs], b[kChunkPairs];
      w.template decode<T>(ca[u], values, a);
      w.template decode<T>(cb[u], values, b);
#pragma unroll
      for (int s = 0; s < 8; s++) {
#pragma unroll
        for (int j = 0; j < NTiles; j++) {
          mma16816<T>(acc[j], a[2 * s], b[2 * s], a[2 * s + 1], b[2 * s + 1], wordOf(xv[u][j], 2 * s),
                      wordOf(xv[u][j], 2 * s + 1));
        }
      }
    }
  }
  // acc[j] holds rows (g, g + 8) x activation rows 8 j + 2 t + (0, 1) of this warp's share.
#pragma unroll
  for (int j = 0; j < NTiles; j++) {
    partial[warp][g][8 * j + 2 * t] = acc[j][0];
    partial[warp][g][8 * j + 2 * t + 1] = acc[j][1];
    partial[warp][g + 8][8 * j + 2 * t] = acc[j][2];
    partial[warp][g + 8][8 * j + 2 * t + 1] = acc[j][3];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < 16 * 8 * NTiles; e += blockDim.x) {
    const int row = e & 15, m = e >> 4;
    if (m >= rows || r0 + row >= outFeatures) continue;
    float sum = 0;
#pragma unroll
    for (int v = 0; v < kTcWarps; v++) sum += partial[v][row][m];
    y[m * outFeatures + r0 + row] = Num<T>::store(sum);
  }
}

}  // namespace gemv_previous
