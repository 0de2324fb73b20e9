// Host-side declarations shared by the binding (g++) and the kernel files (nvcc):
// dtypes, the strided tensor argument, CUDA error handling and the device context.
// No V8 or nan here, so every .cu file can include it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace blora {

// Element types, numbered as the TypeScript side lists them (see `dtypeNames`).
enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3, Int32 = 4, Int8 = 5, UInt8 = 6 };
constexpr int kNumDTypes = 7;

const char* dtypeName(DType dtype);
size_t dtypeSize(DType dtype);

// Highest tensor rank a kernel accepts.
constexpr int kMaxRank = 8;

// A strided view of device memory: element i (row-major over `shape`) lives at
// data + (offset + sum(index[d] * strides[d])) * dtypeSize(dtype).
struct TensorArg {
  void* data = nullptr;  // base address of the storage
  int64_t offset = 0;    // in elements
  DType dtype = DType::Float32;
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};

  int64_t numel() const;
  // True when the elements are dense and in row-major order (size-1 dims may have any stride).
  bool isContiguous() const;
  // Address of the first element (data + offset).
  char* first() const { return static_cast<char*>(data) + offset * static_cast<int64_t>(dtypeSize(dtype)); }
  // "float32[2, 3]" for error messages.
  std::string describe() const;
};

// A CUDA runtime failure; the message names the CUDA error and what was running.
class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// Device memory could not be allocated even after the cache was emptied.
class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The device cannot be used (no driver, no GPU, unsupported GPU).
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws CudaError: "CUDA error <name> (<description>) <context>".
[[noreturn]] void throwCuda(cudaError_t err, const std::string& context);

// Throws CudaError unless `err` is cudaSuccess.
inline void check(cudaError_t err, const char* context) {
  if (err != cudaSuccess) throwCuda(err, context);
}

// Call right after a kernel launch: throws naming the kernel when the launch failed.
void checkLaunch(const char* kernel);

// Throws std::invalid_argument with `message` (bad arguments from the caller).
[[noreturn]] void fail(const std::string& message);

// Argument checks shared by the launchers; they throw std::invalid_argument naming the kernel.
void requireSameShape(const char* kernel, const TensorArg& a, const TensorArg& b);
void requireContiguous(const char* kernel, const TensorArg& t, const char* role);
void requireDType(const char* kernel, const TensorArg& t, DType dtype, const char* role);

// --- The device context (device.cc). ---

// Outcome of `probeDevice`.
struct ProbeResult {
  bool available = false;
  std::string reason;  // why not, when unavailable
  std::string deviceName;
  int computeMajor = 0;
  int computeMinor = 0;
  int driverVersion = 0;
  int runtimeVersion = 0;
  size_t totalMemory = 0;
};

// Looks for a usable GPU; on success selects device 0 and creates the stream. Idempotent.
const ProbeResult& probeDevice();
// Throws Unavailable unless `probeDevice` succeeded.
void requireDevice();
// The single stream every kernel and copy runs on.
cudaStream_t stream();

// Whether kernels start as programmatic dependent launches (dependent_launch.cuh): on unless
// BLORA_CUDA_DEPENDENT_LAUNCH=0, or until setDependentLaunches(false).
bool dependentLaunches();
// Sets it for the rest of the process; returns the previous setting.
bool setDependentLaunches(bool on);
// Streaming multiprocessors of the device (for grid sizing).
int smCount();
// The most shared memory one block may opt into (cudaFuncAttributeMaxDynamicSharedMemorySize).
size_t maxSharedMemoryPerBlock();
// Waits for all queued work; reports an asynchronous kernel failure as a CudaError.
void synchronize();
// Whether the stream is being recorded as a graph (graph.cc): waits and host copies are refused.
bool capturingGraph();

}  // namespace blora
