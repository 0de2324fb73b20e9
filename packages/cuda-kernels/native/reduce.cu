// sum / mean / max / min of each row of a contiguous [rows, cols] matrix. Reductions over
// other axes are brought to this form by the caller (the reduced axes are permuted last
// and, when that view is not dense, copied), or go to reduce_middle.cu when the reduced
// axes are one run of a contiguous tensor.
//
// Rows are read with 16-byte vectors (reduce_common.cuh). Three shapes of work:
// - short rows: a group of 1..32 lanes per row, several rows per warp;
// - long rows, many of them: one warp per row;
// - long rows, too few to fill the device (a whole-tensor reduction is one row): each row is
//   cut into chunks, one block per chunk; chunk results (float64 / int64) are combined by a
//   second kernel, one warp per row.
#include "block_reduce.cuh"
#include "reduce_common.cuh"
#include "launch.cuh"
#include "scratch.h"

namespace blora {

const char* const kReduceOpNames[int(ReduceOp::Count)] = {"sum", "mean", "max", "min"};

namespace {

constexpr int kThreads = 256;

// Groups of `width` lanes (a power of two <= 32) reduce one row each, grid-stride over rows.
template <typename T, ReduceOp Op>
__global__ void __launch_bounds__(kThreads) rowGroupKernel(const T* x, T* out, int64_t rows, int64_t cols, int width) {
  using R = Reducer<T, Op>;
  using A = typename R::A;
  const int lane = int(threadIdx.x) & 31;
  const int groupLane = lane & (width - 1);
  const int groupsPerWarp = 32 / width;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t first = warp * groupsPerWarp; first < rows; first += warps * groupsPerWarp) {
    const int64_t row = first + lane / width;
    A acc = R::identity();
    if (row < rows) acc = accumulateRange<T, Op>(x + row * cols, cols, groupLane, width, acc);
    acc = R::groupReduce(acc, width);  // every lane takes part, inside the row range or not
    if (row < rows && groupLane == 0) out[row] = R::finish(acc, cols);
  }
}

// Block b reduces chunk b % chunks of row b / chunks: the output itself when Final (one
// chunk per row), else its partial accumulator.
template <typename T, ReduceOp Op, bool Final>
__global__ void __launch_bounds__(kThreads)
    rowChunkKernel(const T* x, T* out, typename Accum<T>::type* partials, int64_t cols, int64_t chunkLen, int64_t chunks) {
  using R = Reducer<T, Op>;
  using A = typename R::A;
  const int64_t row = int64_t(blockIdx.x) / chunks, chunk = int64_t(blockIdx.x) % chunks;
  const int64_t start = chunk * chunkLen;
  const int64_t len = chunkLen < cols - start ? chunkLen : cols - start;
  A acc = accumulateRange<T, Op>(x + row * cols + start, len, int(threadIdx.x), int(blockDim.x), R::identity());
  acc = blockReduce(acc, [](A a, A b) { return R::combine(a, b); }, R::identity());
  if (threadIdx.x == 0) {
    if constexpr (Final) out[row] = R::finish(acc, cols);
    else partials[blockIdx.x] = acc;
  }
}

// One warp per row combines the row's chunk accumulators and stores the result.
template <typename T, ReduceOp Op>
__global__ void __launch_bounds__(kThreads)
    finishRowsKernel(const typename Accum<T>::type* partials, T* out, int64_t rows, int64_t chunks, int64_t count) {
  using R = Reducer<T, Op>;
  using A = typename R::A;
  const int lane = int(threadIdx.x) & 31;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
    A acc = R::identity();
    for (int64_t j = lane; j < chunks; j += 32) acc = R::combine(acc, partials[row * chunks + j]);
    acc = R::groupReduce(acc, 32);
    if (lane == 0) out[row] = R::finish(acc, count);
  }
}

static_assert(kThreads == kDenseThreads, "the reduce kernels size their grids with denseBlocks");

template <ReduceOp Op>
void runReduce(const char* name, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols) {
  visitDType<Op == ReduceOp::Mean ? DTypeSet::Float : DTypeSet::All>(x.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename Accum<T>::type;
    const T* px = reinterpret_cast<const T*>(x.first());
    T* po = reinterpret_cast<T*>(out.first());
    constexpr int V = vectorWidth<T>();
    const int64_t sms = smCount();
    const int64_t packsPerRow = (cols + V - 1) / V;
    int width = 1;
    while (width < 32 && width < packsPerRow) width <<= 1;
    if (width < 32 || rows >= sms * 16) {
      auto kernel = rowGroupKernel<T, Op>;
      kernel<<<denseBlocks(reinterpret_cast<const void*>(kernel), rows * width), kThreads, 0, stream()>>>(px, po, rows,
                                                                                                      cols, width);
      return;
    }
    // Few long rows: enough chunks for about one full wave of blocks, each chunk at least
    // two packs per thread, and a multiple of the pack length so chunks stay aligned alike.
    const int64_t wave = sms * residentBlocksPerSm(reinterpret_cast<const void*>(rowChunkKernel<T, Op, false>));
    const int64_t minChunk = int64_t(kThreads) * V * 2;
    int64_t chunks = std::max<int64_t>(1, std::min((wave + rows - 1) / rows, (cols + minChunk - 1) / minChunk));
    int64_t chunkLen = (cols + chunks - 1) / chunks;
    chunkLen = (chunkLen + V - 1) / V * V;
    chunks = (cols + chunkLen - 1) / chunkLen;
    if (chunks == 1) {
      rowChunkKernel<T, Op, true><<<unsigned(rows), kThreads, 0, stream()>>>(px, po, nullptr, cols, chunkLen, 1);
      return;
    }
    DeviceScratch partials(size_t(rows * chunks) * sizeof(A));
    rowChunkKernel<T, Op, false><<<unsigned(rows * chunks), kThreads, 0, stream()>>>(px, po, partials.as<A>(), cols,
                                                                                      chunkLen, chunks);
    auto finish = finishRowsKernel<T, Op>;
    finish<<<denseBlocks(reinterpret_cast<const void*>(finish), rows * 32), kThreads, 0, stream()>>>(partials.as<A>(), po,
                                                                                                  rows, chunks, cols);
  });
  checkLaunch(name);
}

}  // namespace

void launchReduceRows(ReduceOp op, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols) {
  const char* name = kReduceOpNames[int(op)];
  requireContiguous(name, x, "input");
  requireContiguous(name, out, "output");
  requireDType(name, out, x.dtype, "output");
  if (rows < 0 || cols < 0 || x.numel() != rows * cols || out.numel() != rows) {
    fail(std::string(name) + ": " + x.describe() + " -> " + out.describe() + " is not a reduction of " +
         std::to_string(rows) + " rows of " + std::to_string(cols));
  }
  if (rows == 0) return;
  switch (op) {
    case ReduceOp::Sum: return runReduce<ReduceOp::Sum>(name, x, out, rows, cols);
    case ReduceOp::Mean: return runReduce<ReduceOp::Mean>(name, x, out, rows, cols);
    case ReduceOp::Max: return runReduce<ReduceOp::Max>(name, x, out, rows, cols);
    case ReduceOp::Min: return runReduce<ReduceOp::Min>(name, x, out, rows, cols);
    case ReduceOp::Count: break;
  }
  fail("reduce: unknown op code");
}

}  // namespace blora
