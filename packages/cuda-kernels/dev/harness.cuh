// What the standalone kernel harnesses in dev/ share: a fatal CUDA error ends the run with exit
// code 2, waiting on the addon's stream has a time limit (a barrier bug shows as exit code 3,
// not a frozen process), and failed checks are counted into the exit code. Include it after
// ../native/device.cc, which defines stream().
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <algorithm>

namespace blora {
// The harnesses record graphs with the runtime directly, never through the addon's graph bindings
// (native/graph.cc, which needs Node.js), so the addon's own capture is never active here.
bool capturingGraph() { return false; }
}  // namespace blora

namespace blora::dev {

/** Checks that failed so far; the harness exits with 1 when any did. */
inline int failures = 0;

/** Ends the run (exit code 2) when `err` is an error, naming what failed. */
inline void cudaOrDie(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::printf("FATAL: %s: %s\n", what, cudaGetErrorString(err));
    std::exit(2);
  }
}

/** Waits for the addon's stream; after `limitSeconds` gives up with exit code 3 (a deadlock?). */
inline void waitOrDie(const char* what, int limitSeconds = 30) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t err = cudaStreamQuery(blora::stream());
    if (err == cudaSuccess) return;
    if (err != cudaErrorNotReady) cudaOrDie(err, what);
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(limitSeconds)) {
      std::printf("FATAL: %s did not finish within %d s (a deadlock?)\n", what, limitSeconds);
      std::fflush(stdout);
      std::_Exit(3);
    }
  }
}

/**
 * Reads the harness's mode (all, check or time; all by default) and prints the GPU it runs on.
 * Returns an empty string, after saying why, when the mode is unknown or there is no usable GPU
 * (the harness then exits with code 2).
 */
inline std::string harnessMode(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "all";
  if (mode != "all" && mode != "check" && mode != "time") {
    std::printf("usage: %s [check|time|all]\n", argv[0]);
    return "";
  }
  const blora::ProbeResult& dev = blora::probeDevice();
  if (!dev.available) {
    std::printf("no usable GPU: %s\n", dev.reason.c_str());
    return "";
  }
  std::printf("%s, compute capability %d.%d, %d SMs, %zu KB shared memory per block, driver %d\n", dev.deviceName.c_str(),
              dev.computeMajor, dev.computeMinor, blora::smCount(), blora::maxSharedMemoryPerBlock() / 1024, dev.driverVersion);
  return mode;
}

// Median time of `launch` in ms: 3 warm-up runs, then 20 runs queued back to back with an
// event between each (so host-side launch work overlaps the kernels and is not timed).
template <typename Launch>
inline double medianMs(Launch launch) {
  for (int i = 0; i < 3; i++) launch();
  waitOrDie("warm-up");
  constexpr int kRuns = 20;
  cudaEvent_t events[kRuns + 1];
  for (cudaEvent_t& e : events) cudaEventCreate(&e);
  cudaEventRecord(events[0], stream());
  for (int i = 0; i < kRuns; i++) {
    launch();
    cudaEventRecord(events[i + 1], stream());
  }
  waitOrDie("the timed runs");
  std::vector<float> ms(kRuns);
  for (int i = 0; i < kRuns; i++) cudaEventElapsedTime(&ms[i], events[i], events[i + 1]);
  for (cudaEvent_t& e : events) cudaEventDestroy(e);
  std::sort(ms.begin(), ms.end());
  return ms[kRuns / 2];
}

}  // namespace blora::dev
