// Element types on the device: how each storage type is read into its compute type and
// written back. The conversions reproduce the CPU backend bit for bit:
// - float16/bfloat16 compute in float32 and round to nearest even on store; a NaN keeps
//   its sign and becomes quiet (the CPU encoders do the same);
// - integers compute in int64 and wrap modulo 2^bits on store; a float64 value stored
//   into an integer type truncates, wraps, and maps NaN and +-Infinity to 0, like a
//   JavaScript typed-array store;
// - a float64 value stored into a 16-bit type is first rounded to float32, then to 16 bits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace blora {

// --- 16-bit float bit conversions. ---

__device__ __forceinline__ float bf16BitsToFloat(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

__device__ __forceinline__ uint16_t floatToBf16Bits(float value) {
  uint32_t u = __float_as_uint(value);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return uint16_t(u >> 16);
}

__device__ __forceinline__ uint16_t floatToHalfBits(float value) {
  uint32_t u = __float_as_uint(value);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return uint16_t(((u >> 16) & 0x8000u) | 0x7c00u | 0x0200u | ((u & 0x007fffffu) >> 13));
  }
  return __half_as_ushort(__float2half_rn(value));  // hardware round to nearest even
}

// --- JavaScript typed-array integer stores. ---

// ToUint32 of ECMAScript: truncate, wrap modulo 2^32; NaN and +-Infinity give 0.
__device__ __forceinline__ uint32_t jsToUint32(double d) {
  if (!isfinite(d)) return 0u;
  const double t = trunc(d);
  if (t >= -2147483648.0 && t < 4294967296.0) return t < 0 ? uint32_t(int32_t(t)) : uint32_t(t);
  double m = fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return uint32_t(m);
}

// --- Per-type traits: Compute is the arithmetic type, load/store convert. ---

template <typename T>
struct Num;

template <>
struct Num<float> {
  using Compute = float;
  __device__ static float load(float v) { return v; }
  __device__ static float store(float c) { return c; }
  __device__ static float fromDouble(double d) { return float(d); }
};

template <>
struct Num<double> {
  using Compute = double;
  __device__ static double load(double v) { return v; }
  __device__ static double store(double c) { return c; }
  __device__ static double fromDouble(double d) { return d; }
};

template <>
struct Num<__half> {
  using Compute = float;
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float c) { return __ushort_as_half(floatToHalfBits(c)); }
  __device__ static __half fromDouble(double d) { return store(float(d)); }
};

template <>
struct Num<__nv_bfloat16> {
  using Compute = float;
  __device__ static float load(__nv_bfloat16 v) { return bf16BitsToFloat(__bfloat16_as_ushort(v)); }
  __device__ static __nv_bfloat16 store(float c) { return __ushort_as_bfloat16(floatToBf16Bits(c)); }
  __device__ static __nv_bfloat16 fromDouble(double d) { return store(float(d)); }
};

// Integers compute in int64 (sums and products of two int32s are exact there) and wrap
// on store; Math.imul and typed-array stores give the same low bits on the CPU.
template <typename T>
struct IntNum {
  using Compute = long long;
  __device__ static long long load(T v) { return v; }
  __device__ static T store(long long c) { return T(static_cast<unsigned long long>(c)); }
  __device__ static T fromDouble(double d) { return T(jsToUint32(d)); }
};

template <>
struct Num<int32_t> : IntNum<int32_t> {};
template <>
struct Num<int8_t> : IntNum<int8_t> {};
template <>
struct Num<uint8_t> : IntNum<uint8_t> {};

// --- Math in float or double, chosen by overload. ---

__device__ __forceinline__ float mExp(float x) { return expf(x); }
__device__ __forceinline__ double mExp(double x) { return exp(x); }

// The logistic function without overflow: e^x is only taken of non-positive arguments.
template <typename C>
__device__ __forceinline__ C sigmoidOf(C x) {
  if (x >= C(0)) return C(1) / (C(1) + mExp(-x));
  const C e = mExp(x);
  return e / (C(1) + e);
}

// x sigmoid(x), with its limit -0 at -Infinity (the product would be -Inf * 0 = NaN).
template <typename C>
__device__ __forceinline__ C siluOf(C x) {
  return x == -C(INFINITY) ? -C(0) : x * sigmoidOf(x);
}
__device__ __forceinline__ float mLog(float x) { return logf(x); }
__device__ __forceinline__ double mLog(double x) { return log(x); }
__device__ __forceinline__ float mSqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double mSqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float mRsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double mRsqrt(double x) { return rsqrt(x); }
__device__ __forceinline__ float mTanh(float x) { return tanhf(x); }
__device__ __forceinline__ double mTanh(double x) { return tanh(x); }
__device__ __forceinline__ float mSin(float x) { return sinf(x); }
__device__ __forceinline__ double mSin(double x) { return sin(x); }
__device__ __forceinline__ float mCos(float x) { return cosf(x); }
__device__ __forceinline__ double mCos(double x) { return cos(x); }
__device__ __forceinline__ float mErf(float x) { return erff(x); }
__device__ __forceinline__ double mErf(double x) { return erf(x); }
__device__ __forceinline__ float mErfc(float x) { return erfcf(x); }
__device__ __forceinline__ double mErfc(double x) { return erfc(x); }
__device__ __forceinline__ float mAbs(float x) { return fabsf(x); }
__device__ __forceinline__ double mAbs(double x) { return fabs(x); }
__device__ __forceinline__ long long mAbs(long long x) { return x < 0 ? -x : x; }
__device__ __forceinline__ float mPow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double mPow(double x, double y) { return pow(x, y); }

// Math.max: NaN if either is NaN; +0 is larger than -0.
template <typename C>
__device__ __forceinline__ C jsMax(C a, C b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return signbit(double(a)) ? b : a;
  return a > b ? a : b;
}

// Math.min: NaN if either is NaN; -0 is smaller than +0.
template <typename C>
__device__ __forceinline__ C jsMin(C a, C b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return signbit(double(a)) ? a : b;
  return a < b ? a : b;
}

}  // namespace blora
