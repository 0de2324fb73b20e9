// The JavaScript binding (nan): device, memory and the elementwise, reduction, softmax and
// matmul kernels. The training kernels are bound in bindings_*.cc; binding.h has the shared
// argument parsing and error translation.
#include "binding.h"

#include "allocator.h"
#include "kernels.h"
#include "transfer.h"

namespace blora {
namespace {

v8::Local<v8::Array> nameList(const char* const* names, int count) {
  v8::Local<v8::Array> list = Nan::New<v8::Array>(count);
  for (int i = 0; i < count; i++) Nan::Set(list, i, Nan::New(names[i]).ToLocalChecked());
  return list;
}

// --- Device and memory. ---

NAN_METHOD(Probe) {
  guarded([&] {
    const ProbeResult& p = probeDevice();
    v8::Local<v8::Object> o = Nan::New<v8::Object>();
    Nan::Set(o, Nan::New("available").ToLocalChecked(), Nan::New(p.available));
    Nan::Set(o, Nan::New("reason").ToLocalChecked(), Nan::New(p.reason).ToLocalChecked());
    Nan::Set(o, Nan::New("deviceName").ToLocalChecked(), Nan::New(p.deviceName).ToLocalChecked());
    Nan::Set(o, Nan::New("computeCapability").ToLocalChecked(),
             Nan::New(std::to_string(p.computeMajor) + "." + std::to_string(p.computeMinor)).ToLocalChecked());
    setNumber(o, "driverVersion", p.driverVersion);
    setNumber(o, "runtimeVersion", p.runtimeVersion);
    setNumber(o, "totalMemory", double(p.totalMemory));
    info.GetReturnValue().Set(o);
  });
}

NAN_METHOD(Malloc) {
  guarded([&] {
    const int64_t bytes = integerArg(info, 0, "byte count");
    if (bytes == 0) fail("malloc: byte count must be positive");
    const uintptr_t address = reinterpret_cast<uintptr_t>(allocator().allocate(size_t(bytes)));
    if (address > uintptr_t(9007199254740991ull)) fail("malloc: device address does not fit a JavaScript number");
    info.GetReturnValue().Set(Nan::New(double(address)));
  });
}

NAN_METHOD(Free) {
  guarded([&] { allocator().release(addressArg(info, 0)); });
}

NAN_METHOD(EmptyCache) {
  guarded([&] { allocator().emptyCache(); });
}

NAN_METHOD(MemoryStats) {
  guarded([&] {
    const AllocatorStats s = allocator().stats();
    size_t freeBytes = 0, totalBytes = 0;
    check(cudaMemGetInfo(&freeBytes, &totalBytes), "in cudaMemGetInfo");
    v8::Local<v8::Object> o = Nan::New<v8::Object>();
    setNumber(o, "reservedBytes", double(s.reservedBytes));
    setNumber(o, "allocatedBytes", double(s.allocatedBytes));
    setNumber(o, "requestedBytes", double(s.requestedBytes));
    setNumber(o, "cachedBytes", double(s.cachedBytes));
    setNumber(o, "peakAllocatedBytes", double(s.peakAllocatedBytes));
    setNumber(o, "liveBlocks", double(s.liveBlocks));
    setNumber(o, "cachedBlocks", double(s.cachedBlocks));
    setNumber(o, "cudaMallocCalls", double(s.cudaMallocCalls));
    setNumber(o, "cudaFreeCalls", double(s.cudaFreeCalls));
    setNumber(o, "cacheHits", double(s.cacheHits));
    setNumber(o, "deviceFreeBytes", double(freeBytes));
    setNumber(o, "deviceTotalBytes", double(totalBytes));
    info.GetReturnValue().Set(o);
  });
}

NAN_METHOD(Synchronize) {
  guarded([&] {
    requireDevice();
    synchronize();
  });
}

// upload(address, view): copies the bytes of a typed array to the device.
NAN_METHOD(Upload) {
  guarded([&] {
    void* dst = addressArg(info, 0);
    if (!info[1]->IsArrayBufferView()) fail("upload: expected a typed array");
    Nan::TypedArrayContents<uint8_t> src(info[1]);
    uploadToDevice(dst, *src, src.length());
  });
}

// download(address, view): fills a typed array from the device (waits for queued work).
NAN_METHOD(Download) {
  guarded([&] {
    const void* src = addressArg(info, 0);
    if (!info[1]->IsArrayBufferView()) fail("download: expected a typed array");
    Nan::TypedArrayContents<uint8_t> dst(info[1]);
    downloadToHost(*dst, src, dst.length());
  });
}

// --- Kernels. ---

// fill(out, lowBits, highBits): the element bit pattern as two uint32 halves.
NAN_METHOD(Fill) {
  guarded([&] {
    const TensorArg out = tensorArg(info, 0, "output");
    const uint64_t low = uint64_t(integerArg(info, 1, "low bits")) & 0xffffffffull;
    const uint64_t high = uint64_t(integerArg(info, 2, "high bits")) & 0xffffffffull;
    launchFill(out, (high << 32) | low);
  });
}

NAN_METHOD(Copy) {
  guarded([&] { launchCopy(tensorArg(info, 0, "input"), tensorArg(info, 1, "output")); });
}

NAN_METHOD(Cast) {
  guarded([&] { launchCast(tensorArg(info, 0, "input"), tensorArg(info, 1, "output")); });
}

NAN_METHOD(Unary) {
  guarded([&] {
    const UnaryOp op = UnaryOp(opArg(info, 0, int(UnaryOp::Count), "unary"));
    launchUnary(op, tensorArg(info, 1, "input"), tensorArg(info, 2, "output"));
  });
}

NAN_METHOD(IsFinite) {
  guarded([&] { launchIsFinite(tensorArg(info, 0, "input"), tensorArg(info, 1, "output")); });
}

NAN_METHOD(Binary) {
  guarded([&] {
    const BinaryOp op = BinaryOp(opArg(info, 0, int(BinaryOp::Count), "binary"));
    launchBinary(op, tensorArg(info, 1, "first input"), tensorArg(info, 2, "second input"), tensorArg(info, 3, "output"));
  });
}

NAN_METHOD(Compare) {
  guarded([&] {
    const CompareOp op = CompareOp(opArg(info, 0, int(CompareOp::Count), "comparison"));
    launchCompare(op, tensorArg(info, 1, "first input"), tensorArg(info, 2, "second input"), tensorArg(info, 3, "output"));
  });
}

NAN_METHOD(Where) {
  guarded([&] {
    launchWhere(tensorArg(info, 0, "condition"), tensorArg(info, 1, "second input"), tensorArg(info, 2, "third input"),
                tensorArg(info, 3, "output"));
  });
}

// clamp(x, out, min | null, max | null)
NAN_METHOD(Clamp) {
  guarded([&] {
    const bool hasLo = info[2]->IsNumber();
    const bool hasHi = info[3]->IsNumber();
    launchClamp(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"), hasLo, hasLo ? numberArg(info, 2, "min") : 0.0,
                hasHi, hasHi ? numberArg(info, 3, "max") : 0.0);
  });
}

// reduceRows(op, x, out, rows, cols)
NAN_METHOD(ReduceRows) {
  guarded([&] {
    const ReduceOp op = ReduceOp(opArg(info, 0, int(ReduceOp::Count), "reduction"));
    launchReduceRows(op, tensorArg(info, 1, "input"), tensorArg(info, 2, "output"), integerArg(info, 3, "rows"),
                     integerArg(info, 4, "cols"));
  });
}

// reduceMiddle(op, x, out, outer, reduced, inner)
NAN_METHOD(ReduceMiddle) {
  guarded([&] {
    const ReduceOp op = ReduceOp(opArg(info, 0, int(ReduceOp::Count), "reduction"));
    launchReduceMiddle(op, tensorArg(info, 1, "input"), tensorArg(info, 2, "output"), integerArg(info, 3, "outer"),
                       integerArg(info, 4, "reduced"), integerArg(info, 5, "inner"));
  });
}

// argReduce(isMax, x, out, outer, reduced, inner)
NAN_METHOD(ArgReduce) {
  guarded([&] {
    launchArgReduce(boolArg(info, 0), tensorArg(info, 1, "input"), tensorArg(info, 2, "output"), integerArg(info, 3, "outer"),
                    integerArg(info, 4, "reduced"), integerArg(info, 5, "inner"));
  });
}

// matmulKernel(a, b, out): the name of the kernel matmul would run these operands on.
NAN_METHOD(MatmulKernel) {
  guarded([&] {
    const std::string name = matmulKernelName(tensorArg(info, 0, "first input"), tensorArg(info, 1, "second input"),
                                              tensorArg(info, 2, "output"));
    info.GetReturnValue().Set(Nan::New(name).ToLocalChecked());
  });
}

// setGemmPath(name): picks the tensor-core GEMM path ('auto', 'wgmma' or 'pipelined') for the
// rest of the process, overriding BLORA_CUDA_GEMM; returns the previous path's name.
NAN_METHOD(SetGemmPath) {
  guarded([&] {
    if (info.Length() < 1 || !info[0]->IsString()) fail("setGemmPath: expected 'auto', 'wgmma' or 'pipelined'");
    Nan::Utf8String name(info[0]);
    info.GetReturnValue().Set(Nan::New(setGemmPathByName(*name)).ToLocalChecked());
  });
}

// setDependentLaunches(on): whether kernels start as programmatic dependent launches (while the
// kernel before them finishes) for the rest of the process, overriding BLORA_CUDA_DEPENDENT_LAUNCH;
// returns the previous setting.
NAN_METHOD(SetDependentLaunches) {
  guarded([&] {
    if (info.Length() < 1 || !info[0]->IsBoolean()) fail("setDependentLaunches: expected true or false");
    info.GetReturnValue().Set(Nan::New(setDependentLaunches(Nan::To<bool>(info[0]).FromJust())));
  });
}

// setFloat32MatmulPath(name): picks the float32 matmul kernel ('tf32x3' or 'simt') for the rest
// of the process, overriding BLORA_CUDA_FLOAT32_MATMUL; returns the previous path's name.
NAN_METHOD(SetFloat32MatmulPath) {
  guarded([&] {
    if (info.Length() < 1 || !info[0]->IsString()) fail("setFloat32MatmulPath: expected 'tf32x3' or 'simt'");
    Nan::Utf8String name(info[0]);
    info.GetReturnValue().Set(Nan::New(setFloat32MatmulPathByName(*name)).ToLocalChecked());
  });
}

// wgmmaAvailable(): whether the TMA + wgmma GEMM can run on this device.
NAN_METHOD(WgmmaAvailable) {
  guarded([&] {
    requireDevice();
    info.GetReturnValue().Set(Nan::New(wgmmaAvailable()));
  });
}

// softmaxRows(log, x, out, rows, cols)
NAN_METHOD(SoftmaxRows) {
  guarded([&] {
    const bool log = Nan::To<bool>(info[0]).FromJust();
    launchSoftmaxRows(log, tensorArg(info, 1, "input"), tensorArg(info, 2, "output"), integerArg(info, 3, "rows"),
                      integerArg(info, 4, "cols"));
  });
}

NAN_METHOD(Matmul) {
  guarded([&] {
    const TensorArg a = tensorArg(info, 0, "first input");
    const TensorArg b = tensorArg(info, 1, "second input");
    const TensorArg out = tensorArg(info, 2, "output");
    switch (a.dtype) {
      case DType::Float32:
      case DType::Float64: return launchMatmulSimt(a, b, out);
      case DType::BFloat16:
      case DType::Float16: return launchMatmulTensorCore(a, b, out);
      default:
        fail(std::string("matmul: dtype ") + dtypeName(a.dtype) +
             " is not supported on cuda (supported: float32, float64, float16, bfloat16)");
    }
  });
}

const char* const kDTypeNames[kNumDTypes] = {"float32", "float64", "float16", "bfloat16", "int32", "int8", "uint8"};

NAN_MODULE_INIT(Init) {
  Nan::Set(target, Nan::New("dtypeNames").ToLocalChecked(), nameList(kDTypeNames, kNumDTypes));
  Nan::Set(target, Nan::New("unaryOps").ToLocalChecked(), nameList(kUnaryOpNames, int(UnaryOp::Count)));
  Nan::Set(target, Nan::New("binaryOps").ToLocalChecked(), nameList(kBinaryOpNames, int(BinaryOp::Count)));
  Nan::Set(target, Nan::New("compareOps").ToLocalChecked(), nameList(kCompareOpNames, int(CompareOp::Count)));
  Nan::Set(target, Nan::New("reduceOps").ToLocalChecked(), nameList(kReduceOpNames, int(ReduceOp::Count)));
  Nan::SetMethod(target, "probe", Probe);
  Nan::SetMethod(target, "malloc", Malloc);
  Nan::SetMethod(target, "free", Free);
  Nan::SetMethod(target, "emptyCache", EmptyCache);
  Nan::SetMethod(target, "memoryStats", MemoryStats);
  Nan::SetMethod(target, "synchronize", Synchronize);
  Nan::SetMethod(target, "upload", Upload);
  Nan::SetMethod(target, "download", Download);
  Nan::SetMethod(target, "fill", Fill);
  Nan::SetMethod(target, "copy", Copy);
  Nan::SetMethod(target, "cast", Cast);
  Nan::SetMethod(target, "unary", Unary);
  Nan::SetMethod(target, "isFinite", IsFinite);
  Nan::SetMethod(target, "binary", Binary);
  Nan::SetMethod(target, "compare", Compare);
  Nan::SetMethod(target, "where", Where);
  Nan::SetMethod(target, "clamp", Clamp);
  Nan::SetMethod(target, "reduceRows", ReduceRows);
  Nan::SetMethod(target, "reduceMiddle", ReduceMiddle);
  Nan::SetMethod(target, "argReduce", ArgReduce);
  Nan::SetMethod(target, "softmaxRows", SoftmaxRows);
  Nan::SetMethod(target, "matmul", Matmul);
  Nan::SetMethod(target, "matmulKernel", MatmulKernel);
  Nan::SetMethod(target, "setGemmPath", SetGemmPath);
  Nan::SetMethod(target, "setDependentLaunches", SetDependentLaunches);
  Nan::SetMethod(target, "setFloat32MatmulPath", SetFloat32MatmulPath);
  Nan::SetMethod(target, "wgmmaAvailable", WgmmaAvailable);
  registerDataBindings(target);
  registerNnBindings(target);
  registerQuantBindings(target);
  registerGraphBindings(target);
}

}  // namespace
}  // namespace blora

NAN_MODULE_WORKER_ENABLED(blora_cuda, blora::Init)
