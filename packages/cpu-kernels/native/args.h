// Argument reading shared by the JavaScript bindings, and what the binding files share.
#pragma once

#include <nan.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "kernels.h"

namespace blora {

/** The kernel table in use (chosen from the CPU, or by configure()). */
const KernelTable& active_kernels();

/** Adds the quantized-matmul and attention functions to the addon's exports. */
void init_nn_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target);

/** Adds the rmsNorm, cross-entropy and AdamW functions to the addon's exports. */
void init_training_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target);

/** Adds the strided copy, rope and sum functions to the addon's exports. */
void init_layout_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target);

/** Reads the arguments of one call, remembering the first problem as a JavaScript error. */
class Args {
 public:
  Args(const Nan::FunctionCallbackInfo<v8::Value>& info, const char* fn) : info_(info), fn_(fn) {}

  bool ok() const { return error_.empty(); }

  /** Throws the recorded error (TypeError or RangeError); call when !ok(). */
  void throw_error() const {
    std::string msg = std::string("@blora/cpu-kernels ") + fn_ + ": " + error_;
    if (type_error_) Nan::ThrowTypeError(msg.c_str());
    else Nan::ThrowRangeError(msg.c_str());
  }

  void fail(const std::string& msg, bool type_error = false) {
    if (!ok()) return;
    error_ = msg;
    type_error_ = type_error;
  }

  /** Argument i as an integer (a finite whole number below 2^53 in magnitude). */
  int64_t integer(int i, const char* name) {
    if (!ok()) return 0;
    if (!info_[i]->IsNumber()) {
      fail(std::string(name) + " must be a number", true);
      return 0;
    }
    const double v = Nan::To<double>(info_[i]).FromJust();
    if (!std::isfinite(v) || v != std::trunc(v) || std::fabs(v) > 9007199254740991.0) {
      fail(std::string(name) + " must be an integer, got " + std::to_string(v));
      return 0;
    }
    return static_cast<int64_t>(v);
  }

  /** Argument i as a non-negative integer. */
  int64_t size(int i, const char* name) {
    const int64_t v = integer(i, name);
    if (v < 0) fail(std::string(name) + " must be >= 0, got " + std::to_string(v));
    return v;
  }

  bool boolean(int i) { return Nan::To<bool>(info_[i]).FromJust(); }

  /** Argument i as a Float32Array: its data and length. */
  float* f32(int i, const char* name, int64_t* length) {
    *length = 0;
    if (!ok()) return nullptr;
    if (!info_[i]->IsFloat32Array()) {
      fail(std::string(name) + " must be a Float32Array", true);
      return nullptr;
    }
    Nan::TypedArrayContents<float> contents(info_[i]);
    *length = static_cast<int64_t>(contents.length());
    return *contents;
  }

  /** Argument i as a Float64Array (holding integer offsets). */
  const double* f64(int i, const char* name, int64_t* length) {
    *length = 0;
    if (!ok()) return nullptr;
    if (!info_[i]->IsFloat64Array()) {
      fail(std::string(name) + " must be a Float64Array", true);
      return nullptr;
    }
    Nan::TypedArrayContents<double> contents(info_[i]);
    *length = static_cast<int64_t>(contents.length());
    return *contents;
  }

  /**
   * Checks that the elements offset + sum of idx[d] * strides[d] for idx[d] < sizes[d]
   * lie in [0, length). Nothing is read when a size is 0.
   */
  void span(const char* name, int64_t length, int64_t offset, std::initializer_list<std::pair<int64_t, int64_t>> dims) {
    span(name, length, offset, dims.begin(), dims.end());
  }

  /** As above, for the (size, stride) pairs [first, last). */
  void span(const char* name, int64_t length, int64_t offset, const std::pair<int64_t, int64_t>* first,
            const std::pair<int64_t, int64_t>* last) {
    if (!ok()) return;
    int64_t lo = offset, hi = offset;
    bool overflow = false;
    for (const auto* dim = first; dim != last; ++dim) {
      const auto& [size, stride] = *dim;
      if (size == 0) return;
      int64_t reach = 0;
      overflow |= __builtin_mul_overflow(size - 1, stride, &reach);
      overflow |= __builtin_add_overflow(reach < 0 ? lo : hi, reach, reach < 0 ? &lo : &hi);
    }
    if (overflow || lo < 0 || hi >= length) {
      fail(std::string(name) + " reaches elements [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "] outside its storage of " + std::to_string(length));
    }
  }

  /** Argument i as a finite number. */
  double number(int i, const char* name) {
    if (!ok()) return 0;
    if (!info_[i]->IsNumber()) {
      fail(std::string(name) + " must be a number", true);
      return 0;
    }
    const double v = Nan::To<double>(info_[i]).FromJust();
    if (!std::isfinite(v)) fail(std::string(name) + " must be finite, got " + std::to_string(v));
    return v;
  }

  /** Argument i as a Uint8Array: its data and length. */
  const uint8_t* u8(int i, const char* name, int64_t* length) {
    *length = 0;
    if (!ok()) return nullptr;
    if (!info_[i]->IsUint8Array()) {
      fail(std::string(name) + " must be a Uint8Array", true);
      return nullptr;
    }
    Nan::TypedArrayContents<uint8_t> contents(info_[i]);
    *length = static_cast<int64_t>(contents.length());
    return *contents;
  }

  /** Argument i as an Int32Array: its data and length. */
  const int32_t* i32(int i, const char* name, int64_t* length) {
    *length = 0;
    if (!ok()) return nullptr;
    if (!info_[i]->IsInt32Array()) {
      fail(std::string(name) + " must be an Int32Array", true);
      return nullptr;
    }
    Nan::TypedArrayContents<int32_t> contents(info_[i]);
    *length = static_cast<int64_t>(contents.length());
    return *contents;
  }

  /**
   * Argument i as a Float32Array, or a Uint16Array of float16 bit patterns (then *half is set):
   * its data and length in elements.
   */
  const void* f32_or_f16(int i, const char* name, int64_t* length, bool* half) {
    *length = 0;
    *half = false;
    if (!ok()) return nullptr;
    if (info_[i]->IsFloat32Array()) {
      Nan::TypedArrayContents<float> contents(info_[i]);
      *length = static_cast<int64_t>(contents.length());
      return *contents;
    }
    if (info_[i]->IsUint16Array()) {
      Nan::TypedArrayContents<uint16_t> contents(info_[i]);
      *length = static_cast<int64_t>(contents.length());
      *half = true;
      return *contents;
    }
    fail(std::string(name) + " must be a Float32Array or a Uint16Array (float16 bits)", true);
    return nullptr;
  }

 private:
  const Nan::FunctionCallbackInfo<v8::Value>& info_;
  const char* fn_;
  std::string error_;
  bool type_error_ = false;
};

}  // namespace blora
