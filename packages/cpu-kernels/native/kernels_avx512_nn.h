// AVX-512 loops of the quantized-weight kernels (kernels_avx512_nn.cc) and of exp, softmax
// and the activations (kernels_avx512_exp.cc), which replace the AVX2 ones in the AVX-512
// kernel table. See KernelTable in kernels.h for what each computes.
#pragma once

#include "kernels.h"

namespace blora {
namespace avx512 {

/** Points the quantized-weight entries of `table` at the AVX-512 loops. */
void fill_quant_loops(KernelTable* table);

/** Points exp, softmax_rows and activation of `table` at the AVX-512 loops (kernels_avx512_exp.cc). */
void fill_exp_loops(KernelTable* table);

}  // namespace avx512
}  // namespace blora
