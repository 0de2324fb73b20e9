// Bindings of the data-movement, random and optimizer kernels: copy into a strided view,
// indexSelect / gather / scatterAdd / indexAdd, avgPool1d, the Philox random ops and AdamW.
#include "binding.h"
#include "kernels.h"

namespace blora {
namespace {

int axisArg(const Info& info, int i) { return int(integerArg(info, i, "axis")); }

// Philox arguments at i..i+2: key words k0, k1 and the first counter block.
PhiloxSeed seedArgs(const Info& info, int i) {
  PhiloxSeed s;
  const int64_t k0 = integerArg(info, i, "seed word 0");
  const int64_t k1 = integerArg(info, i + 1, "seed word 1");
  if (k0 > 0xffffffffll || k1 > 0xffffffffll) fail("seed words must be uint32 values");
  s.k0 = uint32_t(k0);
  s.k1 = uint32_t(k1);
  s.offset = uint64_t(integerArg(info, i + 2, "offset"));
  return s;
}

// copyInto(src, dst)
NAN_METHOD(CopyInto) {
  guarded([&] { launchCopyInto(tensorArg(info, 0, "input"), tensorArg(info, 1, "output")); });
}

// copyIntoAt(src, dst, position, axis)
NAN_METHOD(CopyIntoAt) {
  guarded([&] {
    launchCopyIntoAt(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"), tensorArg(info, 2, "position"), int(integerArg(info, 3, "axis")));
  });
}

// indexSelect(x, index, out, axis)
NAN_METHOD(IndexSelect) {
  guarded([&] {
    launchIndexSelect(tensorArg(info, 0, "input"), tensorArg(info, 1, "index"), tensorArg(info, 2, "output"),
                      axisArg(info, 3));
  });
}

// gather(x, index, out, axis)
NAN_METHOD(Gather) {
  guarded([&] {
    launchGather(tensorArg(info, 0, "input"), tensorArg(info, 1, "index"), tensorArg(info, 2, "output"), axisArg(info, 3));
  });
}

// scatterAdd(acc, index, src, axis)
NAN_METHOD(ScatterAdd) {
  guarded([&] {
    launchScatterAdd(tensorArg(info, 0, "accumulator"), tensorArg(info, 1, "index"), tensorArg(info, 2, "src"),
                     axisArg(info, 3));
  });
}

// indexAdd(acc, index, src, axis)
NAN_METHOD(IndexAdd) {
  guarded([&] {
    launchIndexAdd(tensorArg(info, 0, "accumulator"), tensorArg(info, 1, "index"), tensorArg(info, 2, "src"),
                   axisArg(info, 3));
  });
}

// avgPool1d(x, out, kernel)
NAN_METHOD(AvgPool1d) {
  guarded([&] { launchAvgPool1d(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"), integerArg(info, 2, "kernel")); });
}

// randUniform(out, k0, k1, offset)
NAN_METHOD(RandUniform) {
  guarded([&] { launchRandUniform(tensorArg(info, 0, "output"), seedArgs(info, 1)); });
}

// randNormal(out, k0, k1, offset)
NAN_METHOD(RandNormal) {
  guarded([&] { launchRandNormal(tensorArg(info, 0, "output"), seedArgs(info, 1)); });
}

// randInt(out, k0, k1, offset, low, range)
NAN_METHOD(RandInt) {
  guarded([&] {
    launchRandInt(tensorArg(info, 0, "output"), seedArgs(info, 1), signedIntegerArg(info, 4, "low"),
                  uint64_t(integerArg(info, 5, "range")));
  });
}

// randBernoulli(out, k0, k1, offset, threshold)
NAN_METHOD(RandBernoulli) {
  guarded([&] {
    const int64_t threshold = integerArg(info, 4, "threshold");
    if (threshold > (int64_t(1) << 24)) fail("randBernoulli: threshold must be at most 2^24");
    launchRandBernoulli(tensorArg(info, 0, "output"), seedArgs(info, 1), uint32_t(threshold));
  });
}

// adamwStep(param, grad, m, v, [decay, beta1, oneMinusBeta1, beta2, oneMinusBeta2, stepSize, sqrtCorrection2, eps])
NAN_METHOD(AdamWStep) {
  guarded([&] {
    if (!info[4]->IsFloat64Array()) fail("adamwStep: the constants must be a Float64Array");
    Nan::TypedArrayContents<double> k(info[4]);
    if (k.length() != 8) fail("adamwStep: expected 8 constants");
    AdamWConstants c;
    c.decay = (*k)[0];
    c.beta1 = (*k)[1];
    c.oneMinusBeta1 = (*k)[2];
    c.beta2 = (*k)[3];
    c.oneMinusBeta2 = (*k)[4];
    c.stepSize = (*k)[5];
    c.sqrtCorrection2 = (*k)[6];
    c.eps = (*k)[7];
    launchAdamW(tensorArg(info, 0, "param"), tensorArg(info, 1, "grad"), tensorArg(info, 2, "first moment"),
                tensorArg(info, 3, "second moment"), c);
  });
}

// accumulationDType(dtype code) -> dtype code of the scatterAdd / indexAdd accumulator.
NAN_METHOD(AccumulationDType) {
  guarded([&] {
    const int64_t code = integerArg(info, 0, "dtype code");
    if (code >= kNumDTypes) fail("unknown dtype code");
    info.GetReturnValue().Set(Nan::New(int(accumulationDType(DType(code)))));
  });
}

}  // namespace

void registerDataBindings(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "copyInto", CopyInto);
  Nan::SetMethod(target, "copyIntoAt", CopyIntoAt);
  Nan::SetMethod(target, "indexSelect", IndexSelect);
  Nan::SetMethod(target, "gather", Gather);
  Nan::SetMethod(target, "scatterAdd", ScatterAdd);
  Nan::SetMethod(target, "indexAdd", IndexAdd);
  Nan::SetMethod(target, "accumulationDType", AccumulationDType);
  Nan::SetMethod(target, "avgPool1d", AvgPool1d);
  Nan::SetMethod(target, "randUniform", RandUniform);
  Nan::SetMethod(target, "randNormal", RandNormal);
  Nan::SetMethod(target, "randInt", RandInt);
  Nan::SetMethod(target, "randBernoulli", RandBernoulli);
  Nan::SetMethod(target, "adamwStep", AdamWStep);
}

}  // namespace blora
