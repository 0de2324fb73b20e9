// float32 matmul on the tensor cores at float32 accuracy ("3xTF32").
//
// A TF32 value keeps 10 of float32's 23 mantissa bits. Each operand element v is split into
// big = v cut to TF32 and small = v - big, of which the tensor core reads the top 11 bits, so
// v = big + small up to 2^-20 |v|, and a · b is computed as small_a · big_b + big_a · small_b +
// big_a · big_b: three m16n8k8 TF32 MMAs with float32 accumulation. The dropped
// small_a · small_b term and the splits' errors are below 2^-19 |a b| per product, each
// shrinking its own product, so over products of mixed signs they stay below the rounding of
// float32 sums; the products of TF32 values are exact.
//
// A block computes a BM x BN tile of the output with one warp per 64 x 32 sub-tile (4 x 4
// MMA tiles). K is walked 32 at a time through three shared-memory stages filled by cp.async in
// 16-byte pieces, so two steps are in flight while one is multiplied. Each operand keeps its
// memory layout in shared memory (rows along whichever of K or M / N is dense), padded so that
// the fragment reads of a warp fall in 32 distinct banks in either layout. Split-K and batches
// follow the CUDA-core kernel's arguments (sgemm.h): the same plan, the same partial sums.
#include <cstdlib>

#include "async_copy.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "matmul_shape.cuh"
#include "sgemm.h"

namespace blora {

namespace {

constexpr int kStep = 32;   // K per stage
constexpr int kStages = 3;
constexpr int kWarpM = 64, kWarpN = 32;  // outputs per warp

template <int BM, int BN>
__host__ __device__ constexpr int tcThreads() {
  return (BM / kWarpM) * (BN / kWarpN) * 32;
}

// One operand's stage in shared memory: X (M or N) by kStep values of K. KDense: stored
// [x][k] with rows of kStep + 4 floats; otherwise [k][x] with rows of X + 8 floats. Either
// pitch puts the fragment elements (x = g, k = t for g < 8, t < 4) in banks 4g + t or 8t + g.
template <int X, bool KDense>
struct StageLayout {
  static constexpr int kPitch = KDense ? kStep + 4 : X + 8;
  static constexpr int kFloats = KDense ? X * kPitch : kStep * kPitch;
  __device__ static constexpr int at(int x, int k) { return KDense ? x * kPitch + k : k * kPitch + x; }
};

template <int BM, int BN, bool AKDense, bool BKDense>
constexpr size_t tcSharedBytes() {
  return size_t(kStages) * (StageLayout<BM, AKDense>::kFloats + StageLayout<BN, BKDense>::kFloats) * sizeof(float);
}

// Copies one operand's stage: 16-byte pieces of 4 consecutive elements along the dense dim.
// Pieces past the matrix (xLeft, kLeft count what is left from the tile / step start) are
// zero-filled, a piece that straddles the end is read in part.
template <int X, int Threads, bool KDense>
struct StageCopier {
  static constexpr int kPieces = X * kStep / 4 / Threads;
  static_assert(kPieces >= 1 && X * kStep % (4 * Threads) == 0, "tile and thread count do not match");
  int x[kPieces], k[kPieces];

  __device__ __forceinline__ explicit StageCopier(int tid) {
#pragma unroll
    for (int v = 0; v < kPieces; v++) {
      const int e = tid + v * Threads;
      x[v] = KDense ? e / (kStep / 4) : e % (X / 4) * 4;
      k[v] = KDense ? e % (kStep / 4) * 4 : e / (X / 4);
    }
  }

  // base: the operand's element (tile start, step start); sx, sk its strides.
  __device__ __forceinline__ void copy(float* stage, const float* base, int64_t sx, int64_t sk, int xLeft, int kLeft) const {
#pragma unroll
    for (int v = 0; v < kPieces; v++) {
      const int dense = KDense ? kLeft - k[v] : xLeft - x[v];
      const bool rowIn = KDense ? x[v] < xLeft : k[v] < kLeft;
      const int bytes = rowIn ? 4 * max(0, min(4, dense)) : 0;
      const float* src = bytes > 0 ? base + int64_t(x[v]) * sx + int64_t(k[v]) * sk : base;
      cpAsync16(smemAddress(stage + StageLayout<X, KDense>::at(x[v], k[v])), src, bytes);
    }
  }
};

// big = v cut to TF32 (its low 13 bits cleared, so |big| <= |v|), small = v - big (exact, of
// v's sign), whose low 13 bits the tensor core ignores. Where small would be 0 (v a TF32 value)
// or not a number (v infinite), it is the smallest normal float with v's sign instead. So both
// parts of every element have its sign: against an infinite partner all three products are
// the same infinity as the true product (a remainder of the other sign, or a 0, would make
// the output NaN), and against a finite one the stand-in adds below 2^-126 |partner|, nothing
// float32 can hold next to the product.
__device__ __forceinline__ void splitTf32(float v, uint32_t& big, uint32_t& small) {
  big = __float_as_uint(v) & 0xffffe000u;
  const float rest = v - __uint_as_float(big);
  const uint32_t tiny = (__float_as_uint(v) & 0x80000000u) | 0x00800000u;
  small = fabsf(rest) > 0.f ? __float_as_uint(rest) : tiny;  // false for NaN too
}

// d = a · b + c (m16n8k8, TF32 inputs, float32 accumulation).
__device__ __forceinline__ void mmaTf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// acc += a · b over one k8 step, from the operands' TF32 splits (small terms first).
__device__ __forceinline__ void accumulate3xTf32(float (&acc)[4], const uint32_t (&aBig)[4], const uint32_t (&aSmall)[4],
                                                 const uint32_t (&bBig)[2], const uint32_t (&bSmall)[2]) {
  mmaTf32(acc, aSmall, bBig[0], bBig[1], acc);
  mmaTf32(acc, aBig, bSmall[0], bSmall[1], acc);
  mmaTf32(acc, aBig, bBig[0], bBig[1], acc);
}

template <int BM, int BN, bool AKDense, bool BKDense>
__global__ void __launch_bounds__(tcThreads<BM, BN>(), 1) sgemmTf32x3Kernel(SgemmArgs args) {
  constexpr int kThreads = tcThreads<BM, BN>();
  constexpr int kWarpsN = BN / kWarpN;
  using LayoutA = StageLayout<BM, AKDense>;
  using LayoutB = StageLayout<BN, BKDense>;
  extern __shared__ __align__(16) float smem[];
  float* stagesA = smem;
  float* stagesB = smem + kStages * LayoutA::kFloats;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int wm = (warp / kWarpsN) * kWarpM, wn = (warp % kWarpsN) * kWarpN;
  const int M = args.M, N = args.N;
  const int m0 = int(blockIdx.x) * BM, n0 = int(blockIdx.y) * BN;
  const StageCopier<BM, kThreads, AKDense> copyA(tid);
  const StageCopier<BN, kThreads, BKDense> copyB(tid);
  const int64_t jobs = args.batches * args.slices;
  for (int64_t index = blockIdx.z; index < jobs; index += gridDim.z) {
    const SgemmJob job(args, index);
    const int kCount = job.kCount;
    const float* a = args.a + job.offA + int64_t(m0) * args.sam + int64_t(job.kBegin) * args.sak;
    const float* b = args.b + job.offB + int64_t(n0) * args.sbn + int64_t(job.kBegin) * args.sbk;
    const int steps = (kCount + kStep - 1) / kStep;
    auto copyStep = [&](int step) {
      if (step < steps) {
        const int stage = step % kStages, k = step * kStep;
        copyA.copy(stagesA + stage * LayoutA::kFloats, a + int64_t(k) * args.sak, args.sam, args.sak, M - m0, kCount - k);
        copyB.copy(stagesB + stage * LayoutB::kFloats, b + int64_t(k) * args.sbk, args.sbn, args.sbk, N - n0, kCount - k);
      }
      cpAsyncCommit();  // an empty group past the end keeps the count of groups per step fixed
    };
    // The tensor core rounds its sums toward zero, so each stage's products are summed from
    // zero in `part` (32 terms, where the truncation is far below float32's rounding of the
    // total) and added to acc by rounded adds: accumulating into acc itself loses up to a unit
    // of acc per MMA, always in the same direction (2.6e-5 of the result at K = 2100).
    float acc[4][4][4] = {};
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) copyStep(s);
    for (int step = 0; step < steps; step++) {
      cpAsyncWaitPending<kStages - 2>();  // this step's copies have landed (this thread's)
      __syncthreads();                    // ... everyone's, and the stage refilled next was read by all
      copyStep(step + kStages - 1);
      const float* sa = stagesA + (step % kStages) * LayoutA::kFloats;
      const float* sb = stagesB + (step % kStages) * LayoutB::kFloats;
      float part[4][4][4] = {};
#pragma unroll
      for (int kk = 0; kk < kStep; kk += 8) {
        uint32_t bBig[4][2], bSmall[4][2];
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int n = wn + 8 * j + g;
          splitTf32(sb[LayoutB::at(n, kk + t)], bBig[j][0], bSmall[j][0]);
          splitTf32(sb[LayoutB::at(n, kk + t + 4)], bBig[j][1], bSmall[j][1]);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int m = wm + 16 * i + g;
          uint32_t aBig[4], aSmall[4];
          splitTf32(sa[LayoutA::at(m, kk + t)], aBig[0], aSmall[0]);
          splitTf32(sa[LayoutA::at(m + 8, kk + t)], aBig[1], aSmall[1]);
          splitTf32(sa[LayoutA::at(m, kk + t + 4)], aBig[2], aSmall[2]);
          splitTf32(sa[LayoutA::at(m + 8, kk + t + 4)], aBig[3], aSmall[3]);
#pragma unroll
          for (int j = 0; j < 4; j++) accumulate3xTf32(part[i][j], aBig, aSmall, bBig[j], bSmall[j]);
        }
      }
#pragma unroll
      for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
#pragma unroll
          for (int e = 0; e < 4; e++) acc[i][j][e] += part[i][j][e];
        }
      }
    }
    cpAsyncWaitAll();
    __syncthreads();  // the next job's first copies must not overwrite a stage still being read
    // acc[i][j]: rows wm + 16 i + g (+ 8), columns wn + 8 j + 2 t (+ 1).
    float* c = job.output(args);
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int m = m0 + wm + 16 * i + g + 8 * h;
        if (m >= M) continue;
        float* row = c + int64_t(m) * N;
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int n = n0 + wn + 8 * j + 2 * t;
          const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
          if (args.vecC && n + 2 <= N) {
            *reinterpret_cast<float2*>(row + n) = make_float2(v0, v1);
          } else {
            if (n < N) row[n] = v0;
            if (n + 1 < N) row[n + 1] = v1;
          }
        }
      }
    }
  }
}

template <int BM, int BN, bool AKDense, bool BKDense>
void launchTf32x3(const SgemmArgs& args, dim3 grid) {
  constexpr size_t bytes = tcSharedBytes<BM, BN, AKDense, BKDense>();
  static const bool ready = [] {
    return cudaFuncSetAttribute(sgemmTf32x3Kernel<BM, BN, AKDense, BKDense>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                int(bytes)) == cudaSuccess;
  }();
  if (!ready) fail("matmul (3xTF32): cannot reserve " + std::to_string(bytes) + " bytes of shared memory");
  sgemmTf32x3Kernel<BM, BN, AKDense, BKDense><<<grid, tcThreads<BM, BN>(), bytes, stream()>>>(args);
}

template <int BM, int BN>
void launchTf32x3Tile(const SgemmArgs& args, bool aKDense, bool bKDense) {
  MatmulShape shape;  // only M, N and the batch count matter to matmulGrid
  shape.M = args.M, shape.N = args.N, shape.batches = args.batches * args.slices;
  const dim3 grid = matmulGrid("matmul", shape, BM, BN);
  if (aKDense && bKDense) launchTf32x3<BM, BN, true, true>(args, grid);
  else if (aKDense) launchTf32x3<BM, BN, true, false>(args, grid);
  else if (bKDense) launchTf32x3<BM, BN, false, true>(args, grid);
  else launchTf32x3<BM, BN, false, false>(args, grid);
}

Float32MatmulPath parseFloat32Path(const std::string& text, const char* source) {
  if (text.empty() || text == "tf32x3") return Float32MatmulPath::Tf32x3;
  if (text == "simt") return Float32MatmulPath::Simt;
  fail(std::string(source) + " must be 'tf32x3' or 'simt', got '" + text + "'");
}

const char* float32PathName(Float32MatmulPath path) { return path == Float32MatmulPath::Simt ? "simt" : "tf32x3"; }

Float32MatmulPath& float32PathSetting() {
  static Float32MatmulPath path = [] {
    const char* text = std::getenv("BLORA_CUDA_FLOAT32_MATMUL");
    return text ? parseFloat32Path(text, "BLORA_CUDA_FLOAT32_MATMUL") : Float32MatmulPath::Tf32x3;
  }();
  return path;
}

bool hasTf32TensorCores() {
  static const bool yes = [] {
    int device = 0, major = 0;
    return cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 8;
  }();
  return yes;
}

}  // namespace

Float32MatmulPath float32MatmulPath() { return float32PathSetting(); }

std::string setFloat32MatmulPathByName(const std::string& name) {
  const std::string old = float32PathName(float32PathSetting());
  float32PathSetting() = parseFloat32Path(name, "setFloat32MatmulPath");
  return old;
}

bool tf32x3TileExists(int bm, int bn) {
  return (bm == 128 && bn == 128) || (bm == 128 && bn == 64) || (bm == 64 && bn == 128);
}

int tf32x3BlocksPerSM(int bm, int bn) { return bm == 128 && bn == 128 ? 1 : 2; }

bool tf32x3Suits(const SgemmArgs& args) {
  return float32PathSetting() == Float32MatmulPath::Tf32x3 && args.vecA && args.vecB && hasTf32TensorCores();
}

void launchSgemmTf32x3(const SgemmArgs& args, bool aKDense, bool bKDense, int bm, int bn) {
  if (bm == 128 && bn == 128) launchTf32x3Tile<128, 128>(args, aKDense, bKDense);
  else if (bm == 128 && bn == 64) launchTf32x3Tile<128, 64>(args, aKDense, bKDense);
  else if (bm == 64 && bn == 128) launchTf32x3Tile<64, 128>(args, aKDense, bKDense);
  else fail("matmul: no 3xTF32 tile " + std::to_string(bm) + "x" + std::to_string(bn));
  checkLaunch("matmul (3xTF32)");
}

}  // namespace blora
