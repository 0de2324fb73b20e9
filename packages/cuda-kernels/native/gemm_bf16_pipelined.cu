// Large bfloat16 / float16 GEMMs on tensor cores: a multistage cp.async pipeline feeding
// ldmatrix and mma.sync m16n8k16 with float32 accumulation, rounded once at the store.
//
// A block computes a 128 x kBN tile (kBN = 256 with 8 warps, or 128 with 4 warps for
// mid-sized products), stepping through K 32 at a time; each warp owns a 64 x 64 sub-tile
// (4 x 8 mma tiles, 128 accumulators per thread). Four pipeline stages live in dynamic
// shared memory (96 KB or 64 KB), so global loads of the next three K steps overlap the
// math of the current one.
//
// Each operand is copied global -> shared in its own layout with 16-byte cp.async: a
// K-major operand (row-major A, a transposed [N, K] weight as B) as [mn][k] rows, an
// M/N-major one (a row-major [K, N] B, a transposed A) as [k][mn] rows. ldmatrix turns
// either into mma fragments: plain for K-major tiles, .trans for M/N-major ones. 16-byte
// chunks are XOR-swizzled within each 128-byte line, so the eight row addresses of an
// ldmatrix phase and the chunk stores of cp.async fall in distinct banks.
//
// Edges: rows or columns past M, N and K are zero-filled through cp.async's source size (a
// partial chunk reads only its valid bytes), so any M, N, K work; what the kernel needs is
// alignment (see gemmPipelinedPlan). The output goes through shared memory to be written in
// 16-byte rows. Batches run over gridDim.z; output tiles are visited in groups of 8 tile rows
// so that the blocks running at one time share their A and B panels in L2.
#include <type_traits>

#include "async_copy.cuh"
#include "gemm_pipelined.h"
#include "launch.cuh"
#include "matmul_shape.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr int kBM = 128;     // block tile rows (M)
constexpr int kBK = 32;      // K per pipeline stage
constexpr int kStages = 4;
constexpr int kWarpTile = 64;  // each warp computes 64 x 64
constexpr int kGroupM = 8;   // tile rows per L2 group
constexpr int kEpilogueLd = kWarpTile + 8;  // padded row of a warp's staged output, in elements

__host__ __device__ constexpr int log2Of(int v) { return v <= 1 ? 0 : 1 + log2Of(v / 2); }

// One operand's tile in shared memory: kRows rows of kRowChunks 16-byte chunks. Chunk l
// (row-major numbering) is stored at l ^ ((l >> kShift) & 7): the low three bits (the
// position within a 128-byte line) are XORed with the row (for rows of at least 8 chunks)
// or with the line index (for 4-chunk rows, two to a line).
template <bool KMajor, int MN>
struct TileLayout {
  static constexpr int kRowChunks = KMajor ? kBK / 8 : MN / 8;
  static constexpr int kRows = KMajor ? MN : kBK;
  static constexpr int kChunks = kRows * kRowChunks;
  static constexpr int kBytes = kChunks * 16;
  static constexpr int kShift = kRowChunks >= 8 ? log2Of(kRowChunks) : 3;
  static_assert(kRowChunks >= 4 && (kRowChunks & (kRowChunks - 1)) == 0, "rows must be 4, 8, 16... chunks");

  __device__ __forceinline__ static uint32_t offset(int row, int chunk) {
    const int l = row * kRowChunks + chunk;
    return uint32_t(l ^ ((l >> kShift) & 7)) * 16u;
  }
};

// Four 8x8 16-bit matrices; lane l supplies the address of row l % 8 of matrix l / 8.
template <bool Trans>
__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], uint32_t address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  }
#endif
}

// d += a (16x16, row) * b (16x8, col), float32 accumulators. Not volatile: it only touches
// registers, so the compiler may interleave it with the fragment loads.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint32_t bitsOf(__half v) { return __half_as_ushort(v); }

// Issues the cp.async copies of the K step starting at k0 of one operand into a stage.
// Element (mn, k) of the operand is src[mn * ld + k] (KMajor) or src[k * ld + mn].
template <typename T, bool KMajor, int MN, int Threads>
__device__ __forceinline__ void loadTile(uint32_t stage, const T* src, int extentMN, int K, int mn0, int k0,
                                         int64_t ld) {
  using L = TileLayout<KMajor, MN>;
  static_assert(L::kChunks % Threads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < L::kChunks / Threads; i++) {
    const int v = int(threadIdx.x) + i * Threads;
    const int row = v / L::kRowChunks, chunk = v % L::kRowChunks;
    const int mn = KMajor ? mn0 + row : mn0 + chunk * 8;
    const int k = KMajor ? k0 + chunk * 8 : k0 + row;
    // Valid elements of the chunk along its dense dim; 0 past the other dim's edge.
    const int dense = KMajor ? K - k : extentMN - mn;
    const bool inside = KMajor ? mn < extentMN : k < K;
    const int bytes = inside && dense > 0 ? (dense >= 8 ? 16 : dense * int(sizeof(T))) : 0;
    const T* p = bytes > 0 ? (KMajor ? src + int64_t(mn) * ld + k : src + int64_t(k) * ld + mn) : src;
    cpAsync16(stage + L::offset(row, chunk), p, bytes);
  }
}

// The A fragments (4 mma row tiles) of k16 step `ks` for the warp's rows starting at warpM.
template <bool KMajor>
__device__ __forceinline__ void loadFragmentsA(uint32_t (&a)[4][4], uint32_t stage, int warpM, int ks, int lane) {
  using L = TileLayout<KMajor, kBM>;
#pragma unroll
  for (int mi = 0; mi < 4; mi++) {
    if constexpr (KMajor) {
      // Matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15): lane -> row lane % 16, k half lane / 16.
      const int row = warpM + mi * 16 + (lane & 15);
      ldmatrix4<false>(a[mi], stage + L::offset(row, ks * 2 + (lane >> 4)));
    } else {
      // Stored [k][m]: matrix q holds k rows (q / 2) * 8.. and m columns (q % 2) * 8..
      const int q = lane >> 3;
      const int k = ks * 16 + (lane & 7) + (q >> 1) * 8;
      const int m = warpM + mi * 16 + (q & 1) * 8;
      ldmatrix4<true>(a[mi], stage + L::offset(k, m / 8));
    }
  }
}

// The B fragments (8 mma column tiles, two per ldmatrix) of k16 step `ks` from column warpN.
// b[ni][0] covers k 0-7 of the step, b[ni][1] k 8-15.
template <bool KMajor, int BN>
__device__ __forceinline__ void loadFragmentsB(uint32_t (&b)[8][2], uint32_t stage, int warpN, int ks, int lane) {
  using L = TileLayout<KMajor, BN>;
  const int q = lane >> 3;
#pragma unroll
  for (int nj = 0; nj < 4; nj++) {
    uint32_t r[4];
    if constexpr (KMajor) {
      // Stored [n][k]: matrix q holds n rows (q / 2) * 8.. and k columns (q % 2) * 8..
      const int n = warpN + nj * 16 + (lane & 7) + (q >> 1) * 8;
      ldmatrix4<false>(r, stage + L::offset(n, ks * 2 + (q & 1)));
    } else {
      // Stored [k][n]: matrix q holds k rows (q % 2) * 8.. and n columns (q / 2) * 8..
      const int k = ks * 16 + (lane & 7) + (q & 1) * 8;
      const int n = warpN + nj * 16 + (q >> 1) * 8;
      ldmatrix4<true>(r, stage + L::offset(k, n / 8));
    }
    b[2 * nj][0] = r[0];
    b[2 * nj][1] = r[1];
    b[2 * nj + 1][0] = r[2];
    b[2 * nj + 1][1] = r[3];
  }
}

template <int BN>
__host__ __device__ constexpr int threadsFor() {
  return (kBM / kWarpTile) * (BN / kWarpTile) * 32;
}

template <typename T, bool AKMajor, bool BKMajor, int BN>
constexpr int sharedBytesFor() {
  constexpr int stage = TileLayout<AKMajor, kBM>::kBytes + TileLayout<BKMajor, BN>::kBytes;
  constexpr int epilogue = threadsFor<BN>() / 32 * kWarpTile * kEpilogueLd * int(sizeof(T));
  return stage * kStages > epilogue ? stage * kStages : epilogue;
}

template <typename T, bool AKMajor, bool BKMajor, int BN>
__global__ void __launch_bounds__(threadsFor<BN>(), 1)
    gemmPipelinedKernel(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,
                        int64_t lda, int64_t ldb, int64_t batches, StridedIndexer<2> batchOffsets, int tilesM,
                        int tilesN, bool vectorOut) {
  constexpr int kThreads = threadsFor<BN>();
  using LA = TileLayout<AKMajor, kBM>;
  using LB = TileLayout<BKMajor, BN>;
  constexpr int kStageBytes = LA::kBytes + LB::kBytes;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t base = smemAddress(smem);

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int warpM = (warp / (BN / kWarpTile)) * kWarpTile;
  const int warpN = (warp % (BN / kWarpTile)) * kWarpTile;

  // Tile coordinates: consecutive blocks walk down a group of kGroupM tile rows, then across.
  const int pid = int(blockIdx.x);
  const int perGroup = kGroupM * tilesN;
  const int firstM = (pid / perGroup) * kGroupM;
  const int groupRows = min(tilesM - firstM, kGroupM);
  const int m0 = (firstM + (pid % perGroup) % groupRows) * kBM;
  const int n0 = ((pid % perGroup) / groupRows) * BN;
  const int kTiles = (K + kBK - 1) / kBK;

  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    int64_t off[2];
    batchOffsets.offsets(batch, off);
    const T* a = A + off[0];
    const T* b = B + off[1];

    auto loadStage = [&](int tile) {
      const uint32_t stage = base + uint32_t((tile % kStages) * kStageBytes);
      loadTile<T, AKMajor, kBM, kThreads>(stage, a, M, K, m0, tile * kBK, lda);
      loadTile<T, BKMajor, BN, kThreads>(stage + LA::kBytes, b, N, K, n0, tile * kBK, ldb);
    };

#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
      if (s < kTiles) loadStage(s);
      cpAsyncCommit();  // empty groups too, so the wait below counts the same everywhere
    }

    float acc[4][8][4];
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
      for (int ni = 0; ni < 8; ni++) {
#pragma unroll
        for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.f;
      }
    }

    for (int kt = 0; kt < kTiles; kt++) {
      cpAsyncWaitPending<kStages - 2>();  // tile kt has landed (for this thread)
      __syncthreads();             // ... for every thread, and stage kt - 1 is no longer read
      if (kt + kStages - 1 < kTiles) loadStage(kt + kStages - 1);
      cpAsyncCommit();
      const uint32_t stageA = base + uint32_t((kt % kStages) * kStageBytes);
      const uint32_t stageB = stageA + LA::kBytes;
#pragma unroll
      for (int ks = 0; ks < kBK / 16; ks++) {
        uint32_t af[4][4], bf[8][2];
        loadFragmentsA<AKMajor>(af, stageA, warpM, ks, lane);
        loadFragmentsB<BKMajor, BN>(bf, stageB, warpN, ks, lane);
#pragma unroll
        for (int mi = 0; mi < 4; mi++) {
#pragma unroll
          for (int ni = 0; ni < 8; ni++) mma16816<T>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
      }
    }
    cpAsyncWaitAll();
    __syncthreads();  // every warp is done with the pipeline's shared memory

    // Stage the warp's 64 x 64 results as T in shared memory (rows padded so the 32-bit
    // fragment stores of a warp hit 32 distinct banks), then write 16-byte row pieces.
    T* staged = reinterpret_cast<T*>(smem) + warp * kWarpTile * kEpilogueLd;
    const int group = lane >> 2, inGroup = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
      for (int ni = 0; ni < 8; ni++) {
        const int row = mi * 16 + group, col = ni * 8 + inGroup * 2;
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const uint32_t pair = bitsOf(Num<T>::store(acc[mi][ni][2 * h])) |
                                (bitsOf(Num<T>::store(acc[mi][ni][2 * h + 1])) << 16);
          *reinterpret_cast<uint32_t*>(&staged[(row + 8 * h) * kEpilogueLd + col]) = pair;
        }
      }
    }
    __syncwarp();
    T* c = C + batch * int64_t(M) * N;
#pragma unroll 4
    for (int i = 0; i < kWarpTile * kWarpTile / 8 / 32; i++) {
      const int j = lane + 32 * i;
      const int row = j / (kWarpTile / 8), piece = j % (kWarpTile / 8);
      const int gr = m0 + warpM + row, gc = n0 + warpN + piece * 8;
      if (gr >= M || gc >= N) continue;
      const T* s = &staged[row * kEpilogueLd + piece * 8];
      T* dst = c + int64_t(gr) * N + gc;
      if (vectorOut && gc + 8 <= N) {
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(s);
      } else {
        for (int e = 0; e < 8 && gc + e < N; e++) dst[e] = s[e];
      }
    }
    __syncthreads();  // the staging area is the next batch's pipeline memory
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Sets the kernel's dynamic shared memory limit once, then launches it.
template <typename T, bool AKMajor, bool BKMajor, int BN>
void launchConfigured(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s, int64_t lda,
                      int64_t ldb) {
  constexpr int bytes = sharedBytesFor<T, AKMajor, BKMajor, BN>();
  auto kernel = gemmPipelinedKernel<T, AKMajor, BKMajor, BN>;
  static bool configured = false;
  if (!configured) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
          "setting the shared memory of the pipelined GEMM");
    configured = true;
  }
  const int tilesM = (s.M + kBM - 1) / kBM, tilesN = (s.N + BN - 1) / BN;
  const unsigned batchBlocks = unsigned(s.batches < 65535 ? s.batches : 65535);
  const dim3 grid(unsigned(tilesM * tilesN), 1, batchBlocks);
  kernel<<<grid, threadsFor<BN>(), bytes, stream()>>>(
      reinterpret_cast<const T*>(a.first()), reinterpret_cast<const T*>(b.first()), reinterpret_cast<T*>(out.first()),
      s.M, s.N, s.K, lda, ldb, s.batches, s.batchOffsets, tilesM, tilesN, s.N % 8 == 0 && aligned16(out.first()));
}

template <typename T, int BN>
void launchWithLayouts(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s, bool aKMajor,
                       bool bKMajor) {
  const int64_t lda = aKMajor ? s.sam : s.sak;
  const int64_t ldb = bKMajor ? s.sbn : s.sbk;
  if (aKMajor && bKMajor) launchConfigured<T, true, true, BN>(a, b, out, s, lda, ldb);
  else if (aKMajor) launchConfigured<T, true, false, BN>(a, b, out, s, lda, ldb);
  else if (bKMajor) launchConfigured<T, false, true, BN>(a, b, out, s, lda, ldb);
  else launchConfigured<T, false, false, BN>(a, b, out, s, lda, ldb);
}

// Whether an operand can be copied with 16-byte chunks: dense along one matrix dim, the
// other matrix stride and every batch stride a multiple of 8 elements, 16-byte aligned.
// Returns the layout through kMajor (true: dense along K).
bool operandFits(const TensorArg& t, int64_t strideK, int64_t strideMN, bool& kMajor) {
  if (strideK == 1 && strideMN % 8 == 0) kMajor = true;
  else if (strideMN == 1 && strideK % 8 == 0) kMajor = false;
  else return false;
  return aligned16(t.first()) && batchStridesMultipleOf(t, 8);
}

}  // namespace

int gemmPipelinedTileN(const TensorArg& a, const TensorArg& b, const MatmulShape& s) {
  if (a.dtype != DType::BFloat16 && a.dtype != DType::Float16) return 0;
  if (s.M == 0 || s.N == 0 || s.K == 0 || s.batches == 0) return 0;
  bool aKMajor = true, bKMajor = true;
  if (!operandFits(a, s.sak, s.sam, aKMajor) || !operandFits(b, s.sbk, s.sbn, bKMajor)) return 0;
  const int64_t tilesM = (int64_t(s.M) + kBM - 1) / kBM;
  if (tilesM * ((int64_t(s.N) + 127) / 128) > INT32_MAX) return 0;
  // Enough tiles to keep the SMs busy: the wide tile when it fills the device once, the
  // narrow one (two blocks per SM) when it fills it once; smaller products stay on the
  // 64 x 64 kernel, which makes more, smaller blocks.
  const int64_t sms = smCount();
  const int64_t batches = std::min<int64_t>(s.batches, 65535);
  const int64_t wideTiles = tilesM * ((int64_t(s.N) + 255) / 256) * batches;
  const int64_t narrowTiles = tilesM * ((int64_t(s.N) + 127) / 128) * batches;
  const size_t limit = maxSharedMemoryPerBlock();
  if (wideTiles >= sms && size_t(sharedBytesFor<__half, false, false, 256>()) <= limit) return 256;
  if (narrowTiles * 2 >= sms && size_t(sharedBytesFor<__half, false, false, 128>()) <= limit) return 128;
  return 0;
}

bool launchGemmPipelined(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s) {
  const int bn = gemmPipelinedTileN(a, b, s);
  if (bn == 0) return false;
  bool aKMajor = true, bKMajor = true;
  operandFits(a, s.sak, s.sam, aKMajor);
  operandFits(b, s.sbk, s.sbn, bKMajor);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (bn == 256) launchWithLayouts<T, 256>(a, b, out, s, aKMajor, bKMajor);
    else launchWithLayouts<T, 128>(a, b, out, s, aKMajor, bKMajor);
  };
  if (a.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  checkLaunch("matmul (tensor cores, pipelined cp.async + ldmatrix + mma.sync)");
  return true;
}

}  // namespace blora
