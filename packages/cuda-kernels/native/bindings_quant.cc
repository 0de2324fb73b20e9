// Bindings of the quantized-weight kernels (the op layout of @blora/quant).
#include "binding.h"
#include "kernels.h"

namespace blora {
namespace {

// Arguments at i..i+2: outFeatures, inFeatures, blocksize.
FourBitLayout fourBitArgs(const Info& info, int i) {
  FourBitLayout l;
  l.outFeatures = integerArg(info, i, "outFeatures");
  l.inFeatures = integerArg(info, i + 1, "inFeatures");
  l.blocksize = integerArg(info, i + 2, "blocksize");
  return l;
}

// Arguments at i..i+4: bits, outFeatures, inFeatures, blockRows, blockCols.
IntLayout intArgs(const Info& info, int i) {
  IntLayout l;
  l.bits = int(integerArg(info, i, "bits"));
  l.outFeatures = integerArg(info, i + 1, "outFeatures");
  l.inFeatures = integerArg(info, i + 2, "inFeatures");
  l.blockRows = integerArg(info, i + 3, "blockRows");
  l.blockCols = integerArg(info, i + 4, "blockCols");
  return l;
}

// fourBitDequantize(packed, absmax, table, out, outFeatures, inFeatures, blocksize)
NAN_METHOD(FourBitDequantize) {
  guarded([&] {
    launchFourBitDequantize(tensorArg(info, 0, "packed codes"), tensorArg(info, 1, "absmax"), tensorArg(info, 2, "code table"),
                            tensorArg(info, 3, "output"), fourBitArgs(info, 4));
  });
}

// intDequantize(codes, scales, offsets, out, bits, outFeatures, inFeatures, blockRows, blockCols)
NAN_METHOD(IntDequantize) {
  guarded([&] {
    launchIntDequantize(tensorArg(info, 0, "codes"), tensorArg(info, 1, "scales"), tensorArg(info, 2, "offsets"),
                        tensorArg(info, 3, "output"), intArgs(info, 4));
  });
}

// dequantizeBlockwise8(codes, absmax, code, out, blocksize, offset)
NAN_METHOD(DequantizeBlockwise8) {
  guarded([&] {
    launchDequantizeBlockwise8(tensorArg(info, 0, "codes"), tensorArg(info, 1, "absmax"), tensorArg(info, 2, "code"),
                               tensorArg(info, 3, "output"), integerArg(info, 4, "blocksize"), numberArg(info, 5, "offset"));
  });
}

// fourBitGemv(x, packed, absmax, table, out, outFeatures, inFeatures, blocksize)
NAN_METHOD(FourBitGemv) {
  guarded([&] {
    launchFourBitGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "packed codes"), tensorArg(info, 2, "absmax"),
                      tensorArg(info, 3, "code table"), tensorArg(info, 4, "output"), fourBitArgs(info, 5));
  });
}

// intGemv(x, codes, scales, offsets, out, bits, outFeatures, inFeatures, blockRows, blockCols)
NAN_METHOD(IntGemv) {
  guarded([&] {
    launchIntGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "codes"), tensorArg(info, 2, "scales"),
                  tensorArg(info, 3, "offsets"), tensorArg(info, 4, "output"), intArgs(info, 5));
  });
}

}  // namespace

void registerQuantBindings(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "fourBitDequantize", FourBitDequantize);
  Nan::SetMethod(target, "intDequantize", IntDequantize);
  Nan::SetMethod(target, "dequantizeBlockwise8", DequantizeBlockwise8);
  Nan::SetMethod(target, "fourBitGemv", FourBitGemv);
  Nan::SetMethod(target, "intGemv", IntGemv);
  Nan::Set(target, Nan::New("quantGemvMaxRows").ToLocalChecked(), Nan::New(double(kQuantGemvMaxRows)));
}

}  // namespace blora
