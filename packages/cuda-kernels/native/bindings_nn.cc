// Bindings of the fused transformer kernels: rmsNorm, rope, crossEntropy, attention and
// their backward passes.
#include "binding.h"
#include "kernels.h"

namespace blora {

// attention_tc.cu: the attention path setting ('auto', 'tensorcore', 'simt'; returns the previous
// one) and the kernels attention (dO null) or attentionBackward would take for these operands.
std::string setAttentionPathByName(const std::string& name);
std::string attentionKernelName(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg* dO);

namespace {

// rmsNorm(x, weight, y, rstd, eps, offset)
NAN_METHOD(RmsNorm) {
  guarded([&] {
    launchRmsNorm(tensorArg(info, 0, "input"), tensorArg(info, 1, "weight"), tensorArg(info, 2, "output"),
                  tensorArg(info, 3, "rstd"), numberArg(info, 4, "eps"), numberArg(info, 5, "offset"));
  });
}

// rmsNormBackward(dy, x, weight, rstd, dx, dweight, offset, weightGrad)
NAN_METHOD(RmsNormBackward) {
  guarded([&] {
    launchRmsNormBackward(tensorArg(info, 0, "output gradient"), tensorArg(info, 1, "input"), tensorArg(info, 2, "weight"),
                          tensorArg(info, 3, "rstd"), tensorArg(info, 4, "input gradient"),
                          tensorArg(info, 5, "weight gradient"), numberArg(info, 6, "offset"), boolArg(info, 7));
  });
}

// rope(x, cos, sin, out, inverse)
NAN_METHOD(Rope) {
  guarded([&] {
    launchRope(tensorArg(info, 0, "input"), tensorArg(info, 1, "cos table"), tensorArg(info, 2, "sin table"),
               tensorArg(info, 3, "output"), boolArg(info, 4));
  });
}

// The target check's outcome: null, or [position, target] of the first bad target.
void returnTargetError(const Info& info, const TargetError& e) {
  if (!e.found) {
    info.GetReturnValue().SetNull();
    return;
  }
  v8::Local<v8::Array> pair = Nan::New<v8::Array>(2);
  Nan::Set(pair, 0, Nan::New(double(e.position)));
  Nan::Set(pair, 1, Nan::New(double(e.target)));
  info.GetReturnValue().Set(pair);
}

// crossEntropy(logits, targets, loss, lse, ignoreIndex, mean) -> null | [position, target]
NAN_METHOD(CrossEntropy) {
  guarded([&] {
    const TargetError e = launchCrossEntropy(tensorArg(info, 0, "logits"), tensorArg(info, 1, "targets"),
                                             tensorArg(info, 2, "loss"), tensorArg(info, 3, "lse"),
                                             signedIntegerArg(info, 4, "ignoreIndex"), boolArg(info, 5));
    returnTargetError(info, e);
  });
}

// crossEntropyBackward(dloss, logits, targets, lse, dlogits, ignoreIndex, mean) -> null | [position, target]
NAN_METHOD(CrossEntropyBackward) {
  guarded([&] {
    const TargetError e = launchCrossEntropyBackward(
        tensorArg(info, 0, "dloss"), tensorArg(info, 1, "logits"), tensorArg(info, 2, "targets"), tensorArg(info, 3, "lse"),
        tensorArg(info, 4, "output"), signedIntegerArg(info, 5, "ignoreIndex"), boolArg(info, 6));
    returnTargetError(info, e);
  });
}

// The mask arguments at i..i+2: causal, window (0 = none), scale.
AttentionMask maskArgs(const Info& info, int i) {
  AttentionMask m;
  m.causal = boolArg(info, i);
  m.window = integerArg(info, i + 1, "window");
  m.scale = numberArg(info, i + 2, "scale");
  return m;
}

// attention(q, k, v, o, lse, causal, window, scale[, keyLength]): keyLength an int32 tensor of one element.
NAN_METHOD(Attention) {
  guarded([&] {
    AttentionMask mask = maskArgs(info, 5);
    if (info.Length() > 8 && !info[8]->IsNull() && !info[8]->IsUndefined()) {
      const TensorArg length = tensorArg(info, 8, "key length");
      if (length.dtype != DType::Int32 || length.numel() != 1) fail("attention: the key length must be one int32, got " + length.describe());
      mask.keyLength = reinterpret_cast<const int32_t*>(length.first());
    }
    launchAttention(tensorArg(info, 0, "q"), tensorArg(info, 1, "k"), tensorArg(info, 2, "v"), tensorArg(info, 3, "output"),
                    tensorArg(info, 4, "lse"), mask);
  });
}

// attentionBackward(dO, q, k, v, o, lse, dq, dk, dv, causal, window, scale)
NAN_METHOD(AttentionBackward) {
  guarded([&] {
    launchAttentionBackward(tensorArg(info, 0, "dO"), tensorArg(info, 1, "q"), tensorArg(info, 2, "k"),
                            tensorArg(info, 3, "v"), tensorArg(info, 4, "o"), tensorArg(info, 5, "lse"),
                            tensorArg(info, 6, "dq"), tensorArg(info, 7, "dk"), tensorArg(info, 8, "dv"), maskArgs(info, 9));
  });
}

// setAttentionPath(name): picks the attention kernels ('auto', 'tensorcore' or 'simt') for the
// rest of the process, overriding BLORA_CUDA_ATTENTION; returns the previous path's name.
NAN_METHOD(SetAttentionPath) {
  guarded([&] {
    if (info.Length() < 1 || !info[0]->IsString()) fail("setAttentionPath: expected 'auto', 'tensorcore' or 'simt'");
    Nan::Utf8String name(info[0]);
    info.GetReturnValue().Set(Nan::New(setAttentionPathByName(*name)).ToLocalChecked());
  });
}

// attentionKernel(q, k, v, dO | null) -> 'tensorcore' | 'simt'
NAN_METHOD(AttentionKernel) {
  guarded([&] {
    const bool backward = info.Length() > 3 && !info[3]->IsNull() && !info[3]->IsUndefined();
    TensorArg dO;
    if (backward) dO = tensorArg(info, 3, "dO");
    const std::string name = attentionKernelName(tensorArg(info, 0, "q"), tensorArg(info, 1, "k"),
                                                 tensorArg(info, 2, "v"), backward ? &dO : nullptr);
    info.GetReturnValue().Set(Nan::New(name).ToLocalChecked());
  });
}

}  // namespace

void registerNnBindings(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "rmsNorm", RmsNorm);
  Nan::SetMethod(target, "rmsNormBackward", RmsNormBackward);
  Nan::SetMethod(target, "rope", Rope);
  Nan::SetMethod(target, "crossEntropy", CrossEntropy);
  Nan::SetMethod(target, "crossEntropyBackward", CrossEntropyBackward);
  Nan::SetMethod(target, "attention", Attention);
  Nan::SetMethod(target, "attentionBackward", AttentionBackward);
  Nan::SetMethod(target, "setAttentionPath", SetAttentionPath);
  Nan::SetMethod(target, "attentionKernel", AttentionKernel);
}

}  // namespace blora
