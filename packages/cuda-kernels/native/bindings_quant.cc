// Bindings of the quantized-weight kernels (the op layout of @blora/quant) and the pooling kernels
// of the adapters.

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

// The optional epilogue term of the GEMVs and fused GEMMs: (addend | null, lambda, scale[, factor | null])
// from argument `first` on (a factor only where `lowRank`: the GEMVs).
struct AddendArgs {
  TensorArg values, factor;
  GemmAddend addend;
};
void addendArgs(const Info& info, int first, AddendArgs& out, bool lowRank = false) {
  if (info.Length() <= first || info[first]->IsNull() || info[first]->IsUndefined()) return;
  out.values = tensorArg(info, first, "addend");
  out.addend = GemmAddend{&out.values, integerArg(info, first + 1, "lambda"), numberArg(info, first + 2, "scale")};
  const int f = first + 3;
  if (lowRank && info.Length() > f && !info[f]->IsNull() && !info[f]->IsUndefined()) {
    out.factor = tensorArg(info, f, "addend factor");
    out.addend.factor = &out.factor;
  }
}

// fourBitGemv(x, packed, absmax, table, out, outFeatures, inFeatures, blocksize, settled[, addend, lambda, scale, factor]) -> added
NAN_METHOD(FourBitGemv) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 9, add, true);
    const bool added = launchFourBitGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "packed codes"), tensorArg(info, 2, "absmax"),
                                         tensorArg(info, 3, "code table"), tensorArg(info, 4, "output"), fourBitArgs(info, 5),
                                         boolArg(info, 8), add.addend);
    info.GetReturnValue().Set(Nan::New(added));
  });
}

// fourBitDecodeTiles(packed, absmax, tiles, tileAbsmax, outFeatures, inFeatures, blocksize)
NAN_METHOD(FourBitDecodeTiles) {
  guarded([&] {
    launchFourBitDecodeTiles(tensorArg(info, 0, "packed codes"), tensorArg(info, 1, "absmax"), tensorArg(info, 2, "tiles"),
                             tensorArg(info, 3, "tile absmax"), fourBitArgs(info, 4));
  });
}

// fourBitTilesGemv(x, tiles, tileAbsmax, table, out, outFeatures, inFeatures, blocksize, settled[, addend, lambda, scale, factor]) -> added
NAN_METHOD(FourBitTilesGemv) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 9, add, true);
    const bool added = launchFourBitTilesGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "tiles"), tensorArg(info, 2, "tile absmax"),
                                              tensorArg(info, 3, "code table"), tensorArg(info, 4, "output"), fourBitArgs(info, 5),
                                              boolArg(info, 8), add.addend);
    info.GetReturnValue().Set(Nan::New(added));
  });
}

// intDecodeTiles(codes, scales, offsets, tiles, tileScales, tileOffsets, bits, outFeatures, inFeatures, blockRows, blockCols)
NAN_METHOD(IntDecodeTiles) {
  guarded([&] {
    launchIntDecodeTiles(tensorArg(info, 0, "codes"), tensorArg(info, 1, "scales"), tensorArg(info, 2, "offsets"), tensorArg(info, 3, "tiles"),
                         tensorArg(info, 4, "tile scales"), tensorArg(info, 5, "tile offsets"), intArgs(info, 6));
  });
}

// intTilesGemv(x, tiles, tileScales, tileOffsets, out, bits, outFeatures, inFeatures, blockRows, blockCols, settled[, addend,
// lambda, scale, factor]) -> added
NAN_METHOD(IntTilesGemv) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 11, add, true);
    const bool added = launchIntTilesGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "tiles"), tensorArg(info, 2, "tile scales"),
                                          tensorArg(info, 3, "tile offsets"), tensorArg(info, 4, "output"), intArgs(info, 5),
                                          boolArg(info, 10), add.addend);
    info.GetReturnValue().Set(Nan::New(added));
  });
}

// intGemv(x, codes, scales, offsets, out, bits, outFeatures, inFeatures, blockRows, blockCols, settled[, addend, lambda, scale,
// factor]) -> added
NAN_METHOD(IntGemv) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 11, add, true);
    const bool added = launchIntGemv(tensorArg(info, 0, "input"), tensorArg(info, 1, "codes"), tensorArg(info, 2, "scales"),
                                     tensorArg(info, 3, "offsets"), tensorArg(info, 4, "output"), intArgs(info, 5), boolArg(info, 10),
                                     add.addend);
    info.GetReturnValue().Set(Nan::New(added));
  });
}

// fourBitGemm(x, packed, absmax, table, out, outFeatures, inFeatures, blocksize, transposed[, addend, lambda, scale]) -> bool
NAN_METHOD(FourBitGemm) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 9, add);
    const bool done = launchFourBitGemm(tensorArg(info, 0, "input"), tensorArg(info, 1, "packed codes"),
                                        tensorArg(info, 2, "absmax"), tensorArg(info, 3, "code table"),
                                        tensorArg(info, 4, "output"), fourBitArgs(info, 5), boolArg(info, 8), add.addend);
    info.GetReturnValue().Set(Nan::New(done));
  });
}

// intGemm(x, codes, scales, offsets, out, bits, outFeatures, inFeatures, blockRows, blockCols, transposed[, addend,
// lambda, scale]) -> bool
NAN_METHOD(IntGemm) {
  guarded([&] {
    AddendArgs add;
    addendArgs(info, 11, add);
    const bool done = launchIntGemm(tensorArg(info, 0, "input"), tensorArg(info, 1, "codes"), tensorArg(info, 2, "scales"),
                                    tensorArg(info, 3, "offsets"), tensorArg(info, 4, "output"), intArgs(info, 5),
                                    boolArg(info, 10), add.addend);
    info.GetReturnValue().Set(Nan::New(done));
  });
}

// skinnyLinear(x, w, out, lambda) -> bool: out = runMeans(x, λ) · wᵀ for a few rows (kernels.h).
NAN_METHOD(SkinnyLinear) {
  guarded([&] {
    const bool done = launchSkinnyLinear(tensorArg(info, 0, "input"), tensorArg(info, 1, "weight"), tensorArg(info, 2, "output"),
                                         integerArg(info, 3, "lambda"));
    info.GetReturnValue().Set(Nan::New(done));
  });
}

// avgPool1dBackward(dy, dx, kernel): dx = repeatInterleave(dy, kernel) / kernel over the last dim.
NAN_METHOD(AvgPool1dBackward) {
  guarded([&] { launchAvgPool1dBackward(tensorArg(info, 0, "gradient"), tensorArg(info, 1, "output"), integerArg(info, 2, "kernel")); });
}

// poolCast(x, out, kernel): out (float32 / float64) = run means of x's last dim, cast on the way.
NAN_METHOD(PoolCast) {
  guarded([&] { launchPoolCast(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"), integerArg(info, 2, "kernel")); });
}

// repeatAdd(z, base | null, out, lambda, scale): out = base + scale * repeatInterleave(z, lambda).
NAN_METHOD(RepeatAdd) {
  guarded([&] {
    const bool hasBase = !info[1]->IsNull() && !info[1]->IsUndefined();
    const TensorArg base = hasBase ? tensorArg(info, 1, "base") : TensorArg{};
    launchRepeatAdd(tensorArg(info, 0, "product"), hasBase ? &base : nullptr, tensorArg(info, 2, "output"),
                    integerArg(info, 3, "lambda"), numberArg(info, 4, "scale"));
  });
}

// repeatInterleave(x, out, repeats, axis) -> bool (false: layout not handled, nothing launched)
NAN_METHOD(RepeatInterleave) {
  guarded([&] {
    const bool done = launchRepeatInterleave(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"),
                                             integerArg(info, 2, "repeats"), int(integerArg(info, 3, "axis")));
    info.GetReturnValue().Set(Nan::New(done));
  });
}

// sumRuns(x, out, kernel): out [..., d / kernel] = sums of runs of `kernel` elements of the last dim.
NAN_METHOD(SumRuns) {
  guarded([&] { launchSumRuns(tensorArg(info, 0, "input"), tensorArg(info, 1, "output"), integerArg(info, 2, "kernel")); });
}

}  // namespace

void registerQuantBindings(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "fourBitDequantize", FourBitDequantize);
  Nan::SetMethod(target, "intDequantize", IntDequantize);
  Nan::SetMethod(target, "dequantizeBlockwise8", DequantizeBlockwise8);
  Nan::SetMethod(target, "fourBitGemv", FourBitGemv);
  Nan::SetMethod(target, "fourBitDecodeTiles", FourBitDecodeTiles);
  Nan::SetMethod(target, "fourBitTilesGemv", FourBitTilesGemv);
  Nan::SetMethod(target, "intGemv", IntGemv);
  Nan::SetMethod(target, "intDecodeTiles", IntDecodeTiles);
  Nan::SetMethod(target, "intTilesGemv", IntTilesGemv);
  Nan::SetMethod(target, "fourBitGemm", FourBitGemm);
  Nan::SetMethod(target, "intGemm", IntGemm);
  Nan::SetMethod(target, "avgPool1dBackward", AvgPool1dBackward);
  Nan::SetMethod(target, "poolCast", PoolCast);
  Nan::SetMethod(target, "repeatAdd", RepeatAdd);
  Nan::SetMethod(target, "skinnyLinear", SkinnyLinear);
  Nan::SetMethod(target, "repeatInterleave", RepeatInterleave);
  Nan::SetMethod(target, "sumRuns", SumRuns);
  Nan::Set(target, Nan::New("quantGemvMaxRows").ToLocalChecked(), Nan::New(double(kQuantGemvMaxRows)));
}

}  // namespace blora
