// Run-time CPU queries: instruction-set support and the number of usable CPUs.
//
// An instruction set is usable only when the CPU implements it (cpuid) and the operating
// system saves the registers it uses on a context switch (XSAVE enabled, then the state bits
// of XCR0 read with xgetbv): a kernel that runs AVX-512 code on an OS that does not save the
// zmm registers would see them corrupted by the next task switch.
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define BLORA_X86_CPUID 1
#endif

#include "kernels.h"

namespace blora {

namespace {

#if defined(BLORA_X86_CPUID)

/** What cpuid and XCR0 say, read once. */
struct X86Features {
  bool avx2_fma = false;
  bool avx512 = false;  // F, BW, DQ, VL and VNNI, with the OS saving opmask and zmm state
};

/** XCR0: which register states the OS saves (only valid when the OS has enabled XSAVE). */
uint64_t read_xcr0() {
  uint32_t lo, hi;
  // xgetbv with ecx = 0, spelled as bytes so no -mxsave is needed for this translation unit.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

X86Features detect() {
  X86Features f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12);
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE (bit 1) and AVX (bit 2) state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // plus opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7)
  if (!ymm_state || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = ebx & (1u << 5);
  f.avx2_fma = avx2 && fma;
  const bool avx512f = ebx & (1u << 16), avx512dq = ebx & (1u << 17), avx512bw = ebx & (1u << 30),
             avx512vl = ebx & (1u << 31), avx512vnni = ecx & (1u << 11);
  f.avx512 = f.avx2_fma && zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
  return f;
}

const X86Features& features() {
  static const X86Features f = detect();
  return f;
}

#endif

}  // namespace

bool cpu_has_avx2_fma() {
#if defined(BLORA_HAVE_AVX2) && defined(BLORA_X86_CPUID)
  return features().avx2_fma;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(BLORA_HAVE_AVX512) && defined(BLORA_X86_CPUID)
  return features().avx512;
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
