// float32 and float64 matmul: the float32 launcher, and the CUDA-core kernels.
//
// float32 products run on the tensor cores at float32 accuracy (matmul_tf32x3.cu) where that
// kernel can read the operands, and on a register-blocked CUDA-core SGEMM otherwise (or when
// BLORA_CUDA_FLOAT32_MATMUL=simt). Both take the plan below: the tile and the split of K.
//
// The CUDA-core SGEMM: A block computes a BM x BN tile of the output (128x128
// with 256 threads; 128x64 or 64x128 with 128 threads for narrow outputs), each thread an 8x8
// patch made of four 4x4 quads half a tile apart, so its shared-memory reads are float4s that a
// warp (4 x 8 threads) serves in one transaction. K is walked 8 at a time through two
// shared-memory buffers: while the block multiplies one, every thread already holds its part of
// the next step in registers and stores it into the other buffer afterwards, so one barrier per
// step suffices. Operands are read through their strides (transposed views need no copy): the
// loads walk memory along whichever dim is dense, as float4s when strides and alignment allow.
//
// When the output has too few tiles to fill the GPU and K is long (the gradients of low-rank
// adapters: 64 x 2048 outputs over K = 4096 tokens), K is split into slices computed by separate
// blocks into float32 scratch, and a second kernel adds the slices in a fixed order: no atomics,
// so the result is the same on every run.
//
// float64 keeps the simple 64x64 shared-memory kernel.
#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels.h"
#include "launch.cuh"
#include "matmul_shape.cuh"
#include "scratch.h"
#include "sgemm.h"

namespace blora {

namespace {

// ---------------------------------------------------------------------------------------------
// float32: the register-blocked kernel.

constexpr int kStepK = 8;     // K per shared-memory step
constexpr int kPad = 4;       // shared rows are BX + 4 floats: transposed stores stay conflict-free
constexpr int kMinSliceK = 128;  // a split-K slice walks at least this much of K
constexpr int kMaxSlices = 64;

// One operand's part of a step: kStepK values of K by BX values of its output dim X (M for a,
// N for b), held in registers between the global load and the shared-memory store, where it is
// laid out [k][x]. kDense: the operand is dense along K (a row-major a, a transposed b), so each
// thread reads 4 consecutive k of one x; otherwise 4 consecutive x of one k.
template <int BX, int kThreads, bool kDense>
struct StepLoader {
  static constexpr int kPieces = BX * kStepK / 4 / kThreads;  // 4-element pieces per thread
  static_assert(kPieces >= 1 && BX * kStepK % (4 * kThreads) == 0, "tile and thread count do not match");

  const float* p[kPieces];  // first element of each piece at the current step
  int x[kPieces], k[kPieces];  // piece position inside the step: x from the tile start, k from the step start
  float4 r[kPieces];

  __device__ __forceinline__ StepLoader(const float* base, int64_t sx, int64_t sk, int x0, int kBegin, int tid) {
#pragma unroll
    for (int v = 0; v < kPieces; v++) {
      const int e = tid + v * kThreads;
      x[v] = kDense ? e / (kStepK / 4) : e % (BX / 4) * 4;
      k[v] = kDense ? e % (kStepK / 4) * 4 : e / (BX / 4);
      p[v] = base + (int64_t(x0) + x[v]) * sx + (int64_t(kBegin) + k[v]) * sk;
    }
  }

  // Reads the step into registers; kLeft and xLeft count the valid K and X from the step start
  // and the tile start (anything beyond reads as 0).
  __device__ __forceinline__ void load(int kLeft, int xLeft, int64_t sx, int64_t sk, bool vec) {
#pragma unroll
    for (int v = 0; v < kPieces; v++) {
      const bool whole = kDense ? x[v] < xLeft && k[v] + 4 <= kLeft : k[v] < kLeft && x[v] + 4 <= xLeft;
      if (vec && whole) {
        r[v] = __ldg(reinterpret_cast<const float4*>(p[v]));
      } else {
        const int64_t step = kDense ? sk : sx;
        float e[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const bool in = kDense ? x[v] < xLeft && k[v] + i < kLeft : k[v] < kLeft && x[v] + i < xLeft;
          e[i] = in ? __ldg(p[v] + i * step) : 0.f;
        }
        r[v] = make_float4(e[0], e[1], e[2], e[3]);
      }
    }
  }

  __device__ __forceinline__ void advance(int64_t sk) {
#pragma unroll
    for (int v = 0; v < kPieces; v++) p[v] += kStepK * sk;
  }

  __device__ __forceinline__ void store(float (*s)[BX + kPad]) const {
#pragma unroll
    for (int v = 0; v < kPieces; v++) {
      if (kDense) {
        s[k[v] + 0][x[v]] = r[v].x;
        s[k[v] + 1][x[v]] = r[v].y;
        s[k[v] + 2][x[v]] = r[v].z;
        s[k[v] + 3][x[v]] = r[v].w;
      } else {
        *reinterpret_cast<float4*>(&s[k[v]][x[v]]) = r[v];
      }
    }
  }
};

// Threads of a BM x BN block: one per 8x8 patch of outputs.
template <int BM, int BN>
__host__ __device__ constexpr int sgemmThreads() {
  return (BM / 8) * (BN / 8);
}

// Blocks per SM the register budget is sized for: 2 x 256 threads at 128 registers, or 3 x 128
// threads at up to 168 (the narrow tiles' loaders hold more pieces; at 128 they would spill).
template <int BM, int BN>
__host__ __device__ constexpr int sgemmBlocksPerSM() {
  return sgemmThreads<BM, BN>() >= 256 ? 2 : 3;
}

template <int BM, int BN, bool aKDense, bool bKDense>
__global__ void __launch_bounds__(sgemmThreads<BM, BN>(), sgemmBlocksPerSM<BM, BN>()) sgemmKernel(SgemmArgs args) {
  constexpr int kThreads = sgemmThreads<BM, BN>();
  constexpr int kWarpsN = BN / 64;  // a warp covers 4 x 8 threads = 32 x 64 outputs (in quads)
  __shared__ __align__(16) float As[2][kStepK][BM + kPad];
  __shared__ __align__(16) float Bs[2][kStepK][BN + kPad];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int tx = (warp % kWarpsN) * 8 + lane % 8;  // quad column: outputs tx*4.. and BN/2 + tx*4..
  const int ty = (warp / kWarpsN) * 4 + lane / 8;  // quad row: outputs ty*4.. and BM/2 + ty*4..
  const int M = args.M, N = args.N;
  const int m0 = int(blockIdx.x) * BM, n0 = int(blockIdx.y) * BN;
  const int64_t jobs = args.batches * args.slices;
  for (int64_t index = blockIdx.z; index < jobs; index += gridDim.z) {
    const SgemmJob job(args, index);
    const int kCount = job.kCount;
    StepLoader<BM, kThreads, aKDense> la(args.a + job.offA, args.sam, args.sak, m0, job.kBegin, tid);
    StepLoader<BN, kThreads, bKDense> lb(args.b + job.offB, args.sbn, args.sbk, n0, job.kBegin, tid);
    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
#pragma unroll
      for (int j = 0; j < 8; j++) acc[i][j] = 0.f;
    }
    const int steps = (kCount + kStepK - 1) / kStepK;  // block-uniform; 0 when K = 0
    if (steps > 0) {
      la.load(kCount, M - m0, args.sam, args.sak, args.vecA);
      lb.load(kCount, N - n0, args.sbn, args.sbk, args.vecB);
      la.store(As[0]);
      lb.store(Bs[0]);
      __syncthreads();
    }
    for (int step = 0; step < steps; step++) {
      const int cur = step & 1;
      const bool more = step + 1 < steps;
      if (more) {  // the next step's global loads fly while this step multiplies
        la.advance(args.sak);
        lb.advance(args.sbk);
        la.load(kCount - (step + 1) * kStepK, M - m0, args.sam, args.sak, args.vecA);
        lb.load(kCount - (step + 1) * kStepK, N - n0, args.sbn, args.sbk, args.vecB);
      }
#pragma unroll 2  // fully unrolled, the scheduler's look-ahead needs more than 128 registers
      for (int kk = 0; kk < kStepK; kk++) {
        const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][kk][ty * 4]);
        const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][kk][BM / 2 + ty * 4]);
        const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][kk][tx * 4]);
        const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][kk][BN / 2 + tx * 4]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; i++) {
#pragma unroll
          for (int j = 0; j < 8; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
      }
      if (more) {  // the other buffer was last read before the previous barrier
        la.store(As[cur ^ 1]);
        lb.store(Bs[cur ^ 1]);
      }
      __syncthreads();
    }
    float* c = job.output(args);
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const int m = m0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + i - 4);
      if (m >= M) continue;
      float* row = c + int64_t(m) * N;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int n = n0 + h * (BN / 2) + tx * 4;
        if (args.vecC && n + 4 <= N) {
          *reinterpret_cast<float4*>(row + n) = make_float4(acc[i][h * 4], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
        } else {
#pragma unroll
          for (int j = 0; j < 4; j++) {
            if (n + j < N) row[n + j] = acc[i][h * 4 + j];
          }
        }
      }
    }
  }
}

// out[i] = parts[0][i] + parts[1][i] + ... in slice order (deterministic); `count` elements,
// in float4s when vec (count % 4 == 0 and both pointers 16-byte aligned).
__global__ void sumSlices(const float* __restrict__ parts, float* __restrict__ out, int64_t count, int slices, bool vec) {
  if (vec) {
    const int64_t quads = count / 4;
    const float4* p = reinterpret_cast<const float4*>(parts);
    BLORA_GRID_STRIDE_LOOP(i, quads) {
      float4 s = p[i];
      for (int k = 1; k < slices; k++) {
        const float4 t = p[k * quads + i];
        s.x += t.x, s.y += t.y, s.z += t.z, s.w += t.w;
      }
      reinterpret_cast<float4*>(out)[i] = s;
    }
  } else {
    BLORA_GRID_STRIDE_LOOP(i, count) {
      float s = parts[i];
      for (int k = 1; k < slices; k++) s += parts[k * count + i];
      out[i] = s;
    }
  }
}

// How a float32 product is run: the kernel, the block tile and the split of K.
struct SgemmPlan {
  bool tf32x3 = false;
  int bm = 128, bn = 128;
  int slices = 1, sliceK = 0;  // sliceK: a multiple of kStepK, slices * sliceK >= K
};

int64_t tileCount(const MatmulShape& s, int bm, int bn) {
  return ((int64_t(s.M) + bm - 1) / bm) * ((int64_t(s.N) + bn - 1) / bn) * s.batches;
}

// Splits K into `wanted` slices (fewer if K is short), each a multiple of kStepK long.
void splitK(SgemmPlan& p, int K, int64_t wanted) {
  wanted = std::max<int64_t>(1, std::min<int64_t>({wanted, K / kMinSliceK, kMaxSlices}));
  const int64_t perSlice = (K + wanted - 1) / wanted;
  p.sliceK = int(std::max<int64_t>(kStepK, (perSlice + kStepK - 1) / kStepK * kStepK));
  p.slices = int((int64_t(K) + p.sliceK - 1) / p.sliceK);
  if (p.slices <= 1) p.slices = 1, p.sliceK = std::max(K, 1);
}

// Blocks of a plan's kernel that one SM runs at once.
int blocksPerSM(const SgemmPlan& p) {
  if (p.tf32x3) return tf32x3BlocksPerSM(p.bm, p.bn);
  return p.bm == 128 && p.bn == 128 ? sgemmBlocksPerSM<128, 128>() : sgemmBlocksPerSM<128, 64>();
}

// Narrow outputs get the narrow tiles; an output with fewer tiles than the GPU runs at once
// and a long K is split along K, into as many slices as keep all blocks in one wave (one block
// more than the GPU holds would double the time of the product).
SgemmPlan planSgemm(const MatmulShape& s, bool tf32x3) {
  SgemmPlan p;
  p.tf32x3 = tf32x3;
  const int64_t sms = std::max(1, smCount());
  if (s.N <= 64) p.bn = 64;
  else if (s.M <= 64) p.bm = 64;
  else if (tileCount(s, 128, 128) < sms) (s.M >= s.N ? p.bn : p.bm) = 64;
  const int64_t resident = sms * blocksPerSM(p);
  const int64_t tiles = tileCount(s, p.bm, p.bn);
  p.sliceK = std::max(s.K, 1);
  if (2 * tiles <= resident && s.K >= 2 * kMinSliceK) splitK(p, s.K, resident / tiles);
  return p;
}

std::string describePlan(const SgemmPlan& p) {
  std::string name = std::string(p.tf32x3 ? "tf32x3-" : "sgemm-") + std::to_string(p.bm) + "x" + std::to_string(p.bn);
  if (p.slices > 1) name += " split-K " + std::to_string(p.slices) + "x" + std::to_string(p.sliceK);
  return name;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether an operand can be read in float4s: dense along the dim the loads walk, the other
// stride, the batch strides and the first element 16-byte aligned.
bool vectorLoads(const TensorArg& t, bool kDense, int64_t sx, int64_t sk, int64_t extentX, int64_t extentK) {
  const bool dims = kDense ? sk == 1 && (sx % 4 == 0 || extentX == 1) : sx == 1 && (sk % 4 == 0 || extentK == 1);
  return dims && batchStridesMultipleOf(t, 4) && aligned16(t.first());
}

template <int BM, int BN>
void launchTile(const SgemmArgs& args, bool aKDense, bool bKDense) {
  MatmulShape grid;  // only M, N and the batch count matter to matmulGrid
  grid.M = args.M, grid.N = args.N, grid.batches = args.batches * args.slices;
  const dim3 g = matmulGrid("matmul", grid, BM, BN);
  constexpr int kThreads = sgemmThreads<BM, BN>();
  if (aKDense && bKDense) sgemmKernel<BM, BN, true, true><<<g, kThreads, 0, stream()>>>(args);
  else if (aKDense) sgemmKernel<BM, BN, true, false><<<g, kThreads, 0, stream()>>>(args);
  else if (bKDense) sgemmKernel<BM, BN, false, true><<<g, kThreads, 0, stream()>>>(args);
  else sgemmKernel<BM, BN, false, false><<<g, kThreads, 0, stream()>>>(args);
}

// The launch arguments of a float32 product, but for the output and the split of K.
SgemmArgs sgemmArgs(const TensorArg& a, const TensorArg& b, const MatmulShape& s, bool& aKDense, bool& bKDense) {
  aKDense = s.sak == 1 || s.sam != 1;
  bKDense = !(s.sbn == 1 || s.sbk != 1);
  SgemmArgs args;
  args.a = reinterpret_cast<const float*>(a.first());
  args.b = reinterpret_cast<const float*>(b.first());
  args.c = nullptr;
  args.M = s.M, args.N = s.N, args.K = s.K;
  args.sam = s.sam, args.sak = s.sak, args.sbk = s.sbk, args.sbn = s.sbn;
  args.vecA = vectorLoads(a, aKDense, s.sam, s.sak, s.M, s.K);
  args.vecB = vectorLoads(b, bKDense, s.sbn, s.sbk, s.N, s.K);
  args.vecC = false;
  args.batches = s.batches;
  args.batchOffsets = s.batchOffsets;
  args.slices = 1, args.sliceK = std::max(s.K, 1);
  return args;
}

// The plan the launcher takes for these operands.
SgemmPlan planFor(const TensorArg& a, const TensorArg& b, const MatmulShape& s) {
  bool aKDense, bKDense;
  return planSgemm(s, tf32x3Suits(sgemmArgs(a, b, s, aKDense, bKDense)));
}

// Runs a float32 product with the given plan (M, N >= 1).
void launchSgemm(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s, const SgemmPlan& plan) {
  bool aKDense, bKDense;
  SgemmArgs args = sgemmArgs(a, b, s, aKDense, bKDense);
  args.slices = plan.slices;
  args.sliceK = plan.slices > 1 ? plan.sliceK : std::max(s.K, 1);
  float* result = reinterpret_cast<float*>(out.first());
  const int64_t count = s.batches * int64_t(s.M) * s.N;
  DeviceScratch partials(plan.slices > 1 ? size_t(plan.slices) * size_t(count) * sizeof(float) : 0);
  args.c = plan.slices > 1 ? partials.as<float>() : result;
  args.vecC = s.N % 4 == 0 && aligned16(args.c);
  if (plan.tf32x3) {
    if (!args.vecA || !args.vecB) fail("matmul: the 3xTF32 kernel needs operands it can read in 16-byte pieces");
    launchSgemmTf32x3(args, aKDense, bKDense, plan.bm, plan.bn);
  } else {
    if (plan.bm == 128 && plan.bn == 128) launchTile<128, 128>(args, aKDense, bKDense);
    else if (plan.bm == 128 && plan.bn == 64) launchTile<128, 64>(args, aKDense, bKDense);
    else if (plan.bm == 64 && plan.bn == 128) launchTile<64, 128>(args, aKDense, bKDense);
    else fail("matmul: no SGEMM tile " + describePlan(plan));
    checkLaunch("matmul (SGEMM)");
  }
  if (plan.slices > 1) {
    const bool vec = count % 4 == 0 && aligned16(result) && aligned16(args.c);
    sumSlices<<<elementwiseBlocks(vec ? count / 4 : count), kElementwiseThreads, 0, stream()>>>(args.c, result, count,
                                                                                                 plan.slices, vec);
    checkLaunch("matmul (SGEMM split-K sum)");
  }
}

// ---------------------------------------------------------------------------------------------
// float64: a classic shared-memory tiled GEMM. Each block computes a 64x64 tile of the output
// with 256 threads (4x4 outputs each), stepping through K 16 at a time.

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gemmKernel(const T* A, const T* B, T* C, int M, int N, int K, int64_t sam, int64_t sak, int64_t sbk, int64_t sbn,
               int64_t batches, StridedIndexer<2> batchOffsets, bool aDenseAlongK, bool bDenseAlongN) {
  __shared__ T As[kTileK][kTileM + 1];  // +1: the k-fastest stores hit distinct banks
  __shared__ T Bs[kTileK][kTileN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    int64_t off[2];
    batchOffsets.offsets(batch, off);
    const T* a = A + off[0];
    const T* b = B + off[1];
    T acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kTileK) {
#pragma unroll
      for (int i = 0; i < kTileM * kTileK / kThreads; i++) {
        const int e = tid + i * kThreads;
        const int kk = aDenseAlongK ? e % kTileK : e / kTileM;
        const int mm = aDenseAlongK ? e / kTileK : e % kTileM;
        const int gm = m0 + mm, gk = k0 + kk;
        As[kk][mm] = gm < M && gk < K ? a[gm * sam + gk * sak] : T(0);
      }
#pragma unroll
      for (int i = 0; i < kTileN * kTileK / kThreads; i++) {
        const int e = tid + i * kThreads;
        const int kk = bDenseAlongN ? e / kTileN : e % kTileK;
        const int nn = bDenseAlongN ? e % kTileN : e / kTileK;
        const int gk = k0 + kk, gn = n0 + nn;
        Bs[kk][nn] = gk < K && gn < N ? b[gk * sbk + gn * sbn] : T(0);
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kTileK; kk++) {
        T av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
      __syncthreads();
    }
    T* c = C + batch * int64_t(M) * N;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int m = m0 + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int n = n0 + tx + 16 * j;
        if (m < M && n < N) c[int64_t(m) * N + n] = acc[i][j];
      }
    }
  }
}

void launchDgemm(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s) {
  const dim3 grid = matmulGrid("matmul", s, kTileM, kTileN);
  const bool aDenseAlongK = s.sak == 1 || s.sam != 1;
  const bool bDenseAlongN = s.sbn == 1 || s.sbk != 1;
  gemmKernel<double><<<grid, kThreads, 0, stream()>>>(
      reinterpret_cast<const double*>(a.first()), reinterpret_cast<const double*>(b.first()),
      reinterpret_cast<double*>(out.first()), s.M, s.N, s.K, s.sam, s.sak, s.sbk, s.sbn, s.batches, s.batchOffsets,
      aDenseAlongK, bDenseAlongN);
  checkLaunch("matmul (float64 tiled GEMM)");
}

}  // namespace

void launchMatmulSimt(const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const MatmulShape s = matmulShape("matmul", a, b, out);
  if (s.M == 0 || s.N == 0 || s.batches == 0) return;
  if (a.dtype == DType::Float32) launchSgemm(a, b, out, s, planFor(a, b, s));
  else if (a.dtype == DType::Float64) launchDgemm(a, b, out, s);
  else fail(std::string("matmul (CUDA cores): dtype ") + dtypeName(a.dtype) + " is not float32 or float64");
}

std::string sgemmKernelName(const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const MatmulShape s = matmulShape("matmul", a, b, out);
  return describePlan(planFor(a, b, s));
}

}  // namespace blora
