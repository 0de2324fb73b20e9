// A grow-only, 64-byte aligned scratch buffer of floats, reused across calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace blora {

/** A grow-only, 64-byte aligned float buffer. */
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  /** At least n floats (contents unspecified), or nullptr when out of memory. */
  float* reserve(int64_t n) {
    if (n <= capacity_) return data_;
    std::free(data_);
    size_t bytes = (static_cast<size_t>(n < 1 ? 1 : n) * sizeof(float) + 63) / 64 * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    capacity_ = data_ ? n : 0;
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace blora
