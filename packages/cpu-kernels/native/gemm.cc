// The GEMM driver in the GotoBLAS / BLIS style.
//
// For each group of kc-deep slices of the shared dimension:
//   1. pack B into nr-wide slivers and A into mr-tall slivers (zero-padded), per slice,
//      reading the operands through their strides so transposed or broadcast views are never
//      copied first;
//   2. multiply: every (sliver of B, sliver of A) pair is one micro-kernel call that keeps an
//      mr x nr tile of C in registers for the whole slice.
// Both phases are split into tasks that the thread pool hands out dynamically. Products with
// one output row or column are matrix-vector products and skip packing entirely.
// gemm_f32_source takes B from a caller-supplied packer instead (a quantized weight decoded
// straight into the packed slivers).
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "aligned_buffer.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Multiply-adds below which a product runs on one thread (waking workers costs microseconds).
constexpr int64_t kParallelMinWork = int64_t{1} << 20;
// Matrix elements below which a matrix-vector product runs on one thread.
constexpr int64_t kGemvParallelMinWork = int64_t{1} << 17;
// Multiply tasks per thread in each phase.
constexpr int64_t kTasksPerThread = 8;
// Slivers packed per packing task.
constexpr int64_t kPackGroup = 8;
// Floats of packed A and B held at once (64 MiB): a product whose packed operands are larger
// is done in groups of depth slices.
constexpr int64_t kPackBudgetFloats = int64_t{16} << 20;
// Largest register tile any table uses.
constexpr int kMaxMr = 14;
constexpr int kMaxNr = 32;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/** Packing buffers. Each thread has one for its own products, and the caller one it shares. */
struct Scratch {
  AlignedBuffer a, b, x;
};
thread_local Scratch t_private;
thread_local Scratch t_shared;

/**
 * Packs slivers [p0, p1) of MR rows of the rows x kc block of A at `a`:
 * dst[s * MR * kc + p * MR + r] = A(s * MR + r, p), zero for rows past the end.
 */
template <int MR>
void pack_a(const KernelTable& kt, float* dst, const float* a, int64_t rs, int64_t cs, int64_t rows, int64_t kc,
            int64_t p0, int64_t p1) {
  for (int64_t s = p0; s < p1; ++s) {
    float* d = dst + s * MR * kc;
    const float* src = a + s * MR * rs;
    const int64_t h = std::min<int64_t>(MR, rows - s * MR);
    if (h == MR && cs == 1 && kt.pack_a_rows) {
      kt.pack_a_rows(src, rs, kc, d);
    } else if (h == MR && cs == 1) {
      // Row-major A: read each row in order, scatter into the L1-resident sliver.
      for (int r = 0; r < MR; ++r)
        for (int64_t p = 0; p < kc; ++p) d[p * MR + r] = src[r * rs + p];
    } else if (h == MR && rs == 1) {
      // Column-major (transposed) A: each depth step is MR contiguous values.
      for (int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) d[p * MR + r] = src[p * cs + r];
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) d[p * MR + r] = r < h ? src[r * rs + p * cs] : 0.0f;
    }
  }
}

/**
 * Packs slivers [p0, p1) of NR columns of the kc x cols block of B at `b`:
 * dst[s * NR * kc + p * NR + j] = B(p, s * NR + j), zero for columns past the end.
 */
template <int NR>
void pack_b(const KernelTable& kt, float* dst, const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t cols,
            int64_t p0, int64_t p1) {
  for (int64_t s = p0; s < p1; ++s) {
    float* d = dst + s * NR * kc;
    const float* src = b + s * NR * cs;
    const int64_t w = std::min<int64_t>(NR, cols - s * NR);
    if (w == NR && rs == 1 && cs != 1 && kt.pack_b_cols) {
      kt.pack_b_cols(src, cs, kc, d);
    } else if (w == NR && cs == 1) {
      for (int64_t p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) d[p * NR + j] = src[p * rs + j];
    } else if (w == NR && rs == 1) {
      // Transposed B (e.g. a weight stored [n, k]): read each column in order.
      for (int j = 0; j < NR; ++j)
        for (int64_t p = 0; p < kc; ++p) d[p * NR + j] = src[j * cs + p];
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) d[p * NR + j] = j < w ? src[p * rs + j * cs] : 0.0f;
    }
  }
}

using PackAFn = void (*)(const KernelTable&, float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
using PackBFn = void (*)(const KernelTable&, float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);

/** Block sizes and packing routines for one kernel table. */
struct Plan {
  int mr, nr;
  int64_t kc;
  int64_t mc_slivers;  // slivers of A per compute block
  PackAFn pack_a;
  PackBFn pack_b;
};

bool make_plan(const KernelTable& kt, Plan* plan) {
  plan->mr = kt.mr;
  plan->nr = kt.nr;
  plan->kc = kt.kc;
  plan->mc_slivers = std::max<int64_t>(1, kt.mc / kt.mr);
  if (kt.mr == 14 && kt.nr == 32) {
    plan->pack_a = pack_a<14>;
    plan->pack_b = pack_b<32>;
  } else if (kt.mr == 6 && kt.nr == 16) {
    plan->pack_a = pack_a<6>;
    plan->pack_b = pack_b<16>;
  } else if (kt.mr == 4 && kt.nr == 8) {
    plan->pack_a = pack_a<4>;
    plan->pack_b = pack_b<8>;
  } else {
    return false;
  }
  return true;
}

/** Adds (or stores) the valid rows x cols corner of a full micro-tile computed into `tile`. */
void store_edge(const float* tile, int nr, float* c, int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.0f) + tile[r * nr + j];
}

/** B read in place through its strides: packed with the plan's packing routine. */
struct StridedB {
  const Plan* plan;
  const float* b;
  int64_t rsb, csb;

  static void pack(const void* self, const KernelTable& kt, int, float* dst, int64_t pc, int64_t kc, int64_t jc,
                   int64_t nc, int64_t s0, int64_t s1) {
    const StridedB& sb = *static_cast<const StridedB*>(self);
    sb.plan->pack_b(kt, dst, sb.b + pc * sb.rsb + jc * sb.csb, sb.rsb, sb.csb, kc, nc, s0, s1);
  }
};

/**
 * One product C = A @ B with packed panels, on up to `threads` threads; A(i, p) = a[i * rsa + p * csa],
 * B comes from `source`, rows of C are ldc apart.
 *
 * The shared dimension is taken in groups of kc-deep slices (as many as the packing budget
 * holds; usually all of them). For each group, one parallel phase packs every slice of A and
 * B, and a second one multiplies: each task owns a block of C (mc rows by a range of columns)
 * and runs every slice of the group on it, so the threads meet twice per group rather than
 * twice per slice, and a thread that falls behind only delays the blocks it has claimed.
 */
bool gemm_packed(const KernelTable& kt, const Plan& pl, int64_t m, int64_t n, int64_t k, const float* a_base,
                 int64_t rsa, int64_t csa, const BPanelSource& source, float* c_base, int threads, Scratch& panels,
                 int64_t ldc) {
  const int mr = pl.mr, nr = pl.nr;
  const int64_t a_slivers = ceil_div(m, mr), b_slivers = ceil_div(n, nr);
  const int64_t a_stride = a_slivers * mr, b_stride = b_slivers * nr;  // floats per depth step of a slice
  const int64_t slices_total = ceil_div(k, pl.kc);
  const int64_t group = std::max<int64_t>(
      1, std::min(slices_total, kPackBudgetFloats / std::max<int64_t>(1, (a_stride + b_stride) * pl.kc)));
  const int64_t depth = std::min(k, group * pl.kc);
  float* ap = panels.a.reserve(a_stride * depth);
  float* bp = panels.b.reserve(b_stride * depth);
  if (!ap || !bp) return false;

  // Compute tasks: (block of A slivers, range of B slivers), several per thread so that threads
  // finish close together even when one of them was slowed down.
  const int64_t m_blocks = ceil_div(a_slivers, pl.mc_slivers);
  const int64_t n_parts =
      threads > 1 ? std::min(b_slivers, std::max<int64_t>(1, ceil_div(kTasksPerThread * threads, m_blocks))) : 1;
  const int64_t a_pack_tasks = ceil_div(a_slivers, kPackGroup), b_pack_tasks = ceil_div(b_slivers, kPackGroup);

  for (int64_t s0 = 0; s0 < slices_total; s0 += group) {
    const int64_t s1 = std::min(slices_total, s0 + group);
    const int64_t pc0 = s0 * pl.kc;
    // Slice s of the group starts at depth (s - s0) * kc of each buffer; sliver i of it at i * mr * kcs.
    auto slice_depth = [&](int64_t s) { return std::min(pl.kc, k - s * pl.kc); };

    const int64_t pack_tasks = (s1 - s0) * (a_pack_tasks + b_pack_tasks);
    parallel_for(pack_tasks, threads, [&](int64_t t, int) {
      const int64_t s = s0 + t / (a_pack_tasks + b_pack_tasks);
      int64_t u = t % (a_pack_tasks + b_pack_tasks);
      const int64_t pc = s * pl.kc, kcs = slice_depth(s);
      const int64_t offset = (pc - pc0);
      if (u < b_pack_tasks) {
        const int64_t q0 = u * kPackGroup, q1 = std::min(b_slivers, q0 + kPackGroup);
        source.pack(source.self, kt, nr, bp + offset * b_stride, pc, kcs, 0, n, q0, q1);
      } else {
        u -= b_pack_tasks;
        const int64_t q0 = u * kPackGroup, q1 = std::min(a_slivers, q0 + kPackGroup);
        pl.pack_a(kt, ap + offset * a_stride, a_base + pc * csa, rsa, csa, m, kcs, q0, q1);
      }
    });

    parallel_for(m_blocks * n_parts, threads, [&](int64_t t, int) {
      const int64_t mb = t / n_parts, np = t % n_parts;
      const int64_t i0 = mb * a_slivers / m_blocks, i1 = (mb + 1) * a_slivers / m_blocks;
      const int64_t j0 = np * b_slivers / n_parts, j1 = (np + 1) * b_slivers / n_parts;
      alignas(64) float tile[kMaxMr * kMaxNr];
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t pc = s * pl.kc, kcs = slice_depth(s);
        const bool accumulate = pc > 0;
        const float* as_base = ap + (pc - pc0) * a_stride;
        const float* bs_base = bp + (pc - pc0) * b_stride;
        for (int64_t j = j0; j < j1; ++j) {
          const float* bs = bs_base + j * nr * kcs;
          const int64_t cols = std::min<int64_t>(nr, n - j * nr);
          for (int64_t i = i0; i < i1; ++i) {
            const float* as = as_base + i * mr * kcs;
            const int64_t r = std::min<int64_t>(mr, m - i * mr);
            float* c = c_base + i * mr * ldc + j * nr;
            if (r == mr && cols == nr) {
              kt.gemm_micro(kcs, as, bs, c, ldc, accumulate);
            } else {
              kt.gemm_micro(kcs, as, bs, tile, nr, false);
              store_edge(tile, nr, c, ldc, r, cols, accumulate);
            }
          }
        }
      }
    });
  }
  return true;
}

/** How a product with a single output row or column maps onto a matrix-vector kernel. */
struct GemvForm {
  const float* matrix;  // element (i, p) at matrix[i * ri + p * rk]
  int64_t rows, depth, ri, rk;
  const float* x;  // x[p * incx]
  int64_t incx;
};

/** The matrix-vector view of a product with m == 1 or n == 1, if a kernel can read it in place. */
bool gemv_form(const GemmShape& s, const GemmOperands& op, GemvForm* f) {
  if (s.m == 1) {
    // y[j] = sum_p a[p] B(p, j): the matrix is B^T.
    *f = {op.b, s.n, s.k, s.csb, s.rsb, op.a, s.csa};
  } else if (s.n == 1) {
    *f = {op.a, s.m, s.k, s.rsa, s.csa, op.b, s.rsb};
  } else {
    return false;
  }
  return f->rk == 1 || f->ri == 1;
}

/** y = M x for one product in GEMV form, on up to `threads` threads. */
bool gemv(const KernelTable& kt, const GemvForm& f, float* y, int threads, Scratch& scratch) {
  const float* x = f.x;
  if (f.incx != 1) {
    float* packed = scratch.x.reserve(f.depth);
    if (!packed) return false;
    for (int64_t p = 0; p < f.depth; ++p) packed[p] = f.x[p * f.incx];
    x = packed;
  }
  const bool by_rows = f.rk == 1;
  if (f.rows * f.depth < kGemvParallelMinWork) threads = 1;
  // Chunks of whole vector widths; a few per thread so a busy core does not hold everyone up.
  const int64_t align = by_rows ? 8 : 64;
  const int64_t chunks = std::min(ceil_div(f.rows, align), int64_t{4} * threads);
  parallel_for(chunks, threads, [&](int64_t t, int) {
    const int64_t units = ceil_div(f.rows, align);
    const int64_t r0 = std::min(f.rows, t * units / chunks * align);
    const int64_t r1 = std::min(f.rows, (t + 1) * units / chunks * align);
    if (r1 <= r0) return;
    if (by_rows) kt.gemv_rows(r1 - r0, f.depth, f.matrix + r0 * f.ri, f.ri, x, y + r0);
    else kt.gemv_cols(r1 - r0, f.depth, f.matrix + r0, f.rk, x, y + r0);
  });
  return true;
}

/** One product on up to `threads` threads, choosing GEMV or packed GEMM. */
bool product(const KernelTable& kt, const Plan& pl, const GemmShape& s, const GemmOperands& op, int threads,
             Scratch& scratch) {
  GemvForm f;
  if (gemv_form(s, op, &f)) return gemv(kt, f, op.c, threads, scratch);
  const StridedB b{&pl, op.b, s.rsb, s.csb};
  return gemm_packed(kt, pl, s.m, s.n, s.k, op.a, s.rsa, s.csa, {StridedB::pack, &b}, op.c, threads, scratch, s.n);
}

}  // namespace

bool gemm_f32(const KernelTable& kt, int threads, const GemmShape& s, const GemmOperands* items, int64_t count) {
  if (count <= 0 || s.m == 0 || s.n == 0) return true;
  if (s.k == 0) {
    for (int64_t i = 0; i < count; ++i) std::memset(items[i].c, 0, sizeof(float) * s.m * s.n);
    return true;
  }
  Plan pl;
  if (!make_plan(kt, &pl) || pl.mr > kMaxMr || pl.nr > kMaxNr) return false;
  const int64_t work = s.m * s.n * s.k;
  if (work * count < kParallelMinWork) threads = 1;
  if (threads > 1 && count > 1 && work < 4 * kParallelMinWork) {
    // Many small products: one thread per product, each with its own buffers.
    std::atomic<bool> ok{true};
    parallel_for(count, threads, [&](int64_t t, int) {
      if (!product(kt, pl, s, items[t], 1, t_private)) ok.store(false);
    });
    return ok.load();
  }
  for (int64_t i = 0; i < count; ++i) {
    if (!product(kt, pl, s, items[i], work >= kParallelMinWork ? threads : 1, t_shared)) return false;
  }
  return true;
}

bool gemm_f32_source(const KernelTable& kt, int threads, int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa,
                     int64_t csa, const BPanelSource& b, float* c) {
  if (m == 0 || n == 0) return true;
  if (k == 0) {
    std::memset(c, 0, sizeof(float) * m * n);
    return true;
  }
  Plan pl;
  if (!make_plan(kt, &pl) || pl.mr > kMaxMr || pl.nr > kMaxNr) return false;
  if (m * n * k < kParallelMinWork) threads = 1;
  return gemm_packed(kt, pl, m, n, k, a, rsa, csa, b, c, threads, t_shared, n);
}

}  // namespace blora
