// Plain C++ helpers shared by the kernel translation units, whatever instruction set each is
// compiled for. Everything here has internal linkage (an unnamed namespace): every unit gets
// its own copy, compiled with its own flags, so no AVX-512 code can be linked into the AVX2 or
// the portable path.
#pragma once

#include <cstdint>
#include <type_traits>

namespace blora {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/** Four bytes from any address (no alignment needed). */
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

/** Eight bytes from any address (no alignment needed). */
inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

/** i / blocksize; a shift for the usual power-of-two block sizes (a 64-bit division costs tens of cycles). */
inline int64_t block_of(int64_t i, int64_t blocksize) {
  return (blocksize & (blocksize - 1)) == 0 ? i >> __builtin_ctzll(static_cast<uint64_t>(blocksize)) : i / blocksize;
}

/** The 4-bit code of element i: the high nibble of byte i / 2 for even i, the low one for odd i. */
inline int nibble(const uint8_t* packed, int64_t i) {
  const int byte = packed[i >> 1];
  return (i & 1) ? byte & 15 : byte >> 4;
}

/** Calls fn(std::integral_constant<int, R>) for the runtime row count 1 <= rows <= 8 (nothing otherwise). */
template <typename Fn>
inline void with_rows(int64_t rows, const Fn& fn) {
  switch (rows) {
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    case 3: return fn(std::integral_constant<int, 3>());
    case 4: return fn(std::integral_constant<int, 4>());
    case 5: return fn(std::integral_constant<int, 5>());
    case 6: return fn(std::integral_constant<int, 6>());
    case 7: return fn(std::integral_constant<int, 7>());
    case 8: return fn(std::integral_constant<int, 8>());
    default: return;
  }
}

}  // namespace
}  // namespace blora
