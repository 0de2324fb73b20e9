// Helpers shared by the kernel files: grid sizing, the grid-stride loop and
// dispatch from a runtime dtype to a template instantiation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common.h"

namespace blora {

constexpr int kElementwiseThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the device once.
inline unsigned elementwiseBlocks(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  const int64_t cap = int64_t(smCount()) * (2048 / kElementwiseThreads);
  return unsigned(std::max<int64_t>(1, std::min(blocks, cap)));
}

#define BLORA_GRID_STRIDE_LOOP(i, n)                                                        \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

// A type carried as a value, so a generic lambda can receive it.
template <typename T>
struct TypeTag {
  using type = T;
};

// Dtype sets a kernel family may support.
enum class DTypeSet { Float, All };

[[noreturn]] inline void unsupportedDType(const char* kernel, DType dtype, DTypeSet set) {
  const char* list = set == DTypeSet::Float ? "float32, float64, float16, bfloat16" : "every dtype";
  fail(std::string(kernel) + ": dtype " + dtypeName(dtype) + " is not supported on cuda (supported: " + list + ")");
}

// Calls fn(TypeTag<T>{}) with the storage type T of `dtype`, if `dtype` is in `Set`
// (only the dtypes of `Set` are instantiated).
template <DTypeSet Set, typename Fn>
void visitDType(DType dtype, const char* kernel, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(TypeTag<float>{});
    case DType::Float64: return fn(TypeTag<double>{});
    case DType::Float16: return fn(TypeTag<__half>{});
    case DType::BFloat16: return fn(TypeTag<__nv_bfloat16>{});
    default: break;
  }
  if constexpr (Set == DTypeSet::All) {
    if (dtype == DType::Int32) return fn(TypeTag<int32_t>{});
    if (dtype == DType::Int8) return fn(TypeTag<int8_t>{});
    if (dtype == DType::UInt8) return fn(TypeTag<uint8_t>{});
  }
  unsupportedDType(kernel, dtype, Set);
}

// Calls fn(TypeTag<U>{}) with an unsigned integer type as wide as one element of `dtype`
// (for kernels that only move bits).
template <typename Fn>
void visitBits(DType dtype, Fn&& fn) {
  switch (dtypeSize(dtype)) {
    case 1: return fn(TypeTag<uint8_t>{});
    case 2: return fn(TypeTag<uint16_t>{});
    case 4: return fn(TypeTag<uint32_t>{});
    default: return fn(TypeTag<uint64_t>{});
  }
}

}  // namespace blora
