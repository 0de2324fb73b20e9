// Run-time CPU queries: instruction-set support and the number of usable CPUs.
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#include "kernels.h"

namespace blora {

bool cpu_has_avx2_fma() {
#if defined(BLORA_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

int available_cpus() {
#if defined(__linux__)
  // The affinity mask honours taskset and container CPU sets, unlike hardware_concurrency.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace blora
