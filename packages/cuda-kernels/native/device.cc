// The device context: finding a GPU, the one stream, and CUDA error reporting.
#include "common.h"

#include <dlfcn.h>

#include <cstdlib>
#include <sstream>
#include <string>

namespace blora {

const char* dtypeName(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
  }
  return "unknown";
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
    case DType::Float64: return 8;
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Int8:
    case DType::UInt8: return 1;
  }
  return 0;
}

int64_t TensorArg::numel() const {
  int64_t n = 1;
  for (int d = 0; d < rank; d++) n *= shape[d];
  return n;
}

bool TensorArg::isContiguous() const {
  int64_t expected = 1;
  for (int d = rank - 1; d >= 0; d--) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::string TensorArg::describe() const {
  std::ostringstream s;
  s << dtypeName(dtype) << '[';
  for (int d = 0; d < rank; d++) s << (d ? ", " : "") << shape[d];
  s << ']';
  return s.str();
}

void throwCuda(cudaError_t err, const std::string& context) {
  std::ostringstream s;
  s << "CUDA error " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ") " << context;
  throw CudaError(err, s.str());
}

void checkLaunch(const char* kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throwCuda(err, std::string("launching kernel '") + kernel + "'");
}

void fail(const std::string& message) { throw std::invalid_argument(message); }

void requireSameShape(const char* kernel, const TensorArg& a, const TensorArg& b) {
  bool same = a.rank == b.rank;
  for (int d = 0; same && d < a.rank; d++) same = a.shape[d] == b.shape[d];
  if (!same) fail(std::string(kernel) + ": shapes differ: " + a.describe() + " and " + b.describe());
}

void requireContiguous(const char* kernel, const TensorArg& t, const char* role) {
  if (!t.isContiguous()) fail(std::string(kernel) + ": the " + role + " " + t.describe() + " must be contiguous");
}

void requireDType(const char* kernel, const TensorArg& t, DType dtype, const char* role) {
  if (t.dtype != dtype) {
    fail(std::string(kernel) + ": the " + role + " " + t.describe() + " must be " + dtypeName(dtype));
  }
}

namespace {

ProbeResult probe;
bool probed = false;
cudaStream_t theStream = nullptr;
int multiprocessors = 1;
size_t sharedMemoryOptin = 48 * 1024;

// The oldest architecture the build ships machine code for (sm_80).
constexpr int kMinComputeMajor = 8;

// The runtime looks some error names up through the driver; without one it can answer
// "cudaSuccess" for a real failure, so the numeric code is always given and a name only when
// it is plausible.
std::string describeError(const char* call, cudaError_t err) {
  std::ostringstream s;
  s << call << " failed with CUDA error " << int(err);
  const char* name = cudaGetErrorName(err);
  if (err != cudaSuccess && name && std::string(name) != "cudaSuccess") {
    s << " (" << name << ": " << cudaGetErrorString(err) << ")";
  }
  return s.str();
}

// True when the NVIDIA driver library can be loaded into this process.
bool driverLibraryLoads() {
  void* handle = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!handle) return false;
  dlclose(handle);
  return true;
}

// A sentence for the failures that have a plain explanation.
std::string explainFailure(const char* call, cudaError_t err) {
  switch (err) {
    case cudaErrorStubLibrary:
      return "no NVIDIA driver is installed (only the CUDA driver stub library was found)";
    case cudaErrorInsufficientDriver:
      return "the NVIDIA driver is older than the CUDA runtime this addon was built with (" +
             std::to_string(probe.runtimeVersion / 1000) + "." + std::to_string(probe.runtimeVersion % 1000 / 10) +
             "); update the driver";
    case cudaErrorNoDevice: return "no CUDA device found (the NVIDIA driver sees no GPU)";
    default: return describeError(call, err);
  }
}

void runProbe() {
  cudaRuntimeGetVersion(&probe.runtimeVersion);
  // Without the driver library every runtime call fails, some with misleading codes.
  if (!driverLibraryLoads()) {
    probe.reason = "no CUDA driver found (the NVIDIA driver library libcuda.so.1 could not be loaded)";
    return;
  }
  cudaError_t err = cudaDriverGetVersion(&probe.driverVersion);
  if (err != cudaSuccess) {
    probe.reason = explainFailure("cudaDriverGetVersion", err);
    cudaGetLastError();
    return;
  }
  if (probe.driverVersion == 0) {
    probe.reason = "no CUDA driver found (the driver reports no version)";
    return;
  }
  int count = 0;
  err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.reason = explainFailure("cudaGetDeviceCount", err);
    cudaGetLastError();
    return;
  }
  if (count == 0) {
    probe.reason = "no CUDA device found (cudaGetDeviceCount returned 0)";
    return;
  }
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    probe.reason = describeError("cudaGetDeviceProperties", err);
    cudaGetLastError();
    return;
  }
  probe.deviceName = prop.name;
  probe.computeMajor = prop.major;
  probe.computeMinor = prop.minor;
  probe.totalMemory = prop.totalGlobalMem;
  multiprocessors = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  if (prop.sharedMemPerBlockOptin > sharedMemoryOptin) sharedMemoryOptin = prop.sharedMemPerBlockOptin;
  if (prop.major < kMinComputeMajor) {
    std::ostringstream s;
    s << "GPU '" << prop.name << "' has compute capability " << prop.major << '.' << prop.minor
      << "; these kernels need " << kMinComputeMajor << ".0 or newer";
    probe.reason = s.str();
    return;
  }
  err = cudaSetDevice(0);
  if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&theStream, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    probe.reason = describeError("creating the CUDA context", err);
    cudaGetLastError();
    return;
  }
  probe.available = true;
}

}  // namespace

const ProbeResult& probeDevice() {
  if (!probed) {
    probed = true;
    runProbe();
  }
  return probe;
}

void requireDevice() {
  const ProbeResult& p = probeDevice();
  if (!p.available) throw Unavailable("CUDA is not available: " + p.reason);
}

cudaStream_t stream() { return theStream; }

namespace {
bool& dependentLaunchSetting() {
  static bool on = [] {
    const char* text = std::getenv("BLORA_CUDA_DEPENDENT_LAUNCH");
    return text == nullptr || std::string(text) != "0";
  }();
  return on;
}
}  // namespace

bool dependentLaunches() { return dependentLaunchSetting(); }

bool setDependentLaunches(bool on) {
  const bool previous = dependentLaunchSetting();
  dependentLaunchSetting() = on;
  return previous;
}

int smCount() { return multiprocessors; }

size_t maxSharedMemoryPerBlock() { return sharedMemoryOptin; }

void synchronize() {
  if (capturingGraph()) fail("cannot wait for the device while a graph is being captured (read values only after capturing)");
  cudaError_t err = cudaStreamSynchronize(theStream);
  if (err != cudaSuccess) {
    throwCuda(err, "while waiting for queued kernels (the failing kernel ran earlier; set CUDA_LAUNCH_BLOCKING=1 to report it at its launch)");
  }
}

}  // namespace blora
