// Programmatic dependent launches (Hopper): a kernel launched with launchDependent may start while
// the kernel before it in the stream is still running, so its launch is hidden behind that kernel
// (on an H200, 0.1-0.3 us of each short kernel of a recorded decode step). Every such kernel
// begins with dependentKernelBegins(): it waits until the kernels before it have finished and
// their writes are visible, so it reads and writes nothing early, and then lets the next kernel
// start in turn. On a GPU without these launches, or with them turned off
// (setDependentLaunches / BLORA_CUDA_DEPENDENT_LAUNCH=0), the same kernels run as plain launches
// and the two instructions do nothing.
#pragma once

#include <string>
#include <utility>

#include "common.h"

namespace blora {

// Waits for the kernels before this one in the stream: their completion and their memory.
__device__ __forceinline__ void waitForPriorGrids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the next kernel in the stream start (it still waits for this one before touching memory).
__device__ __forceinline__ void letDependentsStart() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The first statement of every kernel that launchDependent starts.
__device__ __forceinline__ void dependentKernelBegins() {
  waitForPriorGrids();
  letDependentsStart();
}

// Launches `kernel` on the addon's stream as a dependent launch (where dependentLaunches(), common.h), or
// plainly; throws naming the kernel when the launch fails. The kernel must begin with
// dependentKernelBegins().
template <typename... Params, typename... Args>
void launchDependent(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t sharedBytes, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream();
  cudaLaunchAttribute dependent = {};
  dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent.val.programmaticStreamSerializationAllowed = 1;
  if (dependentLaunches()) {
    config.attrs = &dependent;
    config.numAttrs = 1;
  }
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (err != cudaSuccess) throwCuda(err, std::string("launching kernel '") + name + "'");
}

}  // namespace blora
