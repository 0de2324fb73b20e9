// Helpers shared by the binding files (addon.cc, bindings_*.cc): argument parsing and the
// translation of C++ exceptions into JavaScript errors. Tensors arrive as Float64Array
// descriptors [address, offset, dtype, rank, ...shape, ...strides]; addresses are device
// pointers held in doubles (exact below 2^53). C++ exceptions become JavaScript errors with a
// `code`: CUDA_ERROR (plus `cudaError`, the CUDA error name), CUDA_OUT_OF_MEMORY,
// CUDA_UNAVAILABLE or INVALID_ARGUMENT.
#pragma once

#include <nan.h>

#include <cmath>
#include <string>

#include "common.h"

namespace blora {

using Info = Nan::FunctionCallbackInfo<v8::Value>;

inline void throwWithCode(const std::string& message, const char* code, const char* cudaErrorName) {
  v8::Local<v8::Value> error = Nan::Error(message.c_str());
  v8::Local<v8::Object> object = error.As<v8::Object>();
  Nan::Set(object, Nan::New("code").ToLocalChecked(), Nan::New(code).ToLocalChecked());
  if (cudaErrorName) Nan::Set(object, Nan::New("cudaError").ToLocalChecked(), Nan::New(cudaErrorName).ToLocalChecked());
  Nan::ThrowError(error);
}

// Runs `body`, turning C++ exceptions into JavaScript ones.
template <typename Body>
void guarded(Body&& body) {
  try {
    body();
  } catch (const OutOfMemory& e) {
    throwWithCode(e.what(), "CUDA_OUT_OF_MEMORY", nullptr);
  } catch (const CudaError& e) {
    throwWithCode(e.what(), "CUDA_ERROR", cudaGetErrorName(e.code()));
  } catch (const Unavailable& e) {
    throwWithCode(e.what(), "CUDA_UNAVAILABLE", nullptr);
  } catch (const std::invalid_argument& e) {
    throwWithCode(e.what(), "INVALID_ARGUMENT", nullptr);
  } catch (const std::exception& e) {
    throwWithCode(e.what(), "CUDA_ERROR", nullptr);
  }
}

inline double numberArg(const Info& info, int i, const char* what) {
  if (!info[i]->IsNumber()) fail(std::string(what) + " must be a number");
  return Nan::To<double>(info[i]).FromJust();
}

inline int64_t integerArg(const Info& info, int i, const char* what) {
  const double v = numberArg(info, i, what);
  if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 9007199254740991.0) {
    fail(std::string(what) + " must be a non-negative integer below 2^53");
  }
  return int64_t(v);
}

// An integer of either sign (|v| < 2^53).
inline int64_t signedIntegerArg(const Info& info, int i, const char* what) {
  const double v = numberArg(info, i, what);
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9007199254740991.0) {
    fail(std::string(what) + " must be an integer of magnitude below 2^53");
  }
  return int64_t(v);
}

inline bool boolArg(const Info& info, int i) { return Nan::To<bool>(info[i]).FromJust(); }

inline void* addressArg(const Info& info, int i) {
  return reinterpret_cast<void*>(uintptr_t(integerArg(info, i, "address")));
}

inline TensorArg tensorArg(const Info& info, int i, const char* role) {
  if (!info[i]->IsFloat64Array()) fail(std::string("the ") + role + " must be a tensor descriptor (Float64Array)");
  Nan::TypedArrayContents<double> d(info[i]);
  const size_t length = d.length();
  if (length < 4) fail(std::string("the ") + role + " descriptor is too short");
  TensorArg t;
  t.data = reinterpret_cast<void*>(uintptr_t((*d)[0]));
  t.offset = int64_t((*d)[1]);
  const int dtype = int((*d)[2]);
  if (dtype < 0 || dtype >= kNumDTypes) fail(std::string("the ") + role + " has an unknown dtype code");
  t.dtype = DType(dtype);
  t.rank = int((*d)[3]);
  if (t.rank < 0 || t.rank > kMaxRank) {
    fail(std::string("the ") + role + " has rank " + std::to_string(t.rank) + "; cuda kernels support up to " +
         std::to_string(kMaxRank));
  }
  if (length != size_t(4 + 2 * t.rank)) fail(std::string("the ") + role + " descriptor has the wrong length");
  for (int k = 0; k < t.rank; k++) {
    t.shape[k] = int64_t((*d)[4 + k]);
    t.strides[k] = int64_t((*d)[4 + t.rank + k]);
  }
  return t;
}

inline int opArg(const Info& info, int i, int count, const char* family) {
  const int64_t op = integerArg(info, i, "op code");
  if (op >= count) fail(std::string("unknown ") + family + " op code " + std::to_string(op));
  return int(op);
}

inline void setNumber(v8::Local<v8::Object> o, const char* key, double value) {
  Nan::Set(o, Nan::New(key).ToLocalChecked(), Nan::New(value));
}

// The binding groups outside addon.cc add their functions to the module object.
void registerDataBindings(v8::Local<v8::Object> target);
void registerNnBindings(v8::Local<v8::Object> target);
void registerQuantBindings(v8::Local<v8::Object> target);
void registerGraphBindings(v8::Local<v8::Object> target);

}  // namespace blora
