// AVX-512 VNNI loops of the int8-activation products (kernels_avx512_q8.cc).
#pragma once

#include "kernels.h"

namespace blora {
namespace avx512 {

/** Points the int8-activation entries of `table` (q8_chunk, int4_dot_q8, nf4_dot_q8) at the VNNI loops. */
void fill_q8_loops(KernelTable* table);

}  // namespace avx512
}  // namespace blora
