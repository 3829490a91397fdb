// Gradients of the LLM ops on CUDA: the CPU kernels' operand checks, then the
// launchers of ModelGradLaunch.cu. Ids, labels and cu_seqlens are checked on
// the device, as in Model.cpp.

#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudnnAttention.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ModelGradLaunch.h"
#include "runtime/kernels/cuda/ModelSupport.h"

namespace veomni::runtime::cuda {

using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckRank;
using cpu::CheckShape;
using cpu::CheckSupportedDType;

absl::Status RmsNormGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rms_norm_grad";
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, cpu::CheckRmsNormGrad(attrs, inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& dy = inputs[2];
  const TensorView& dx = outputs[0];
  const TensorView& dw = outputs[1];
  int64_t dim = x.shape.back();
  if (dim == 0) return absl::OkStatus();
  if (dim > kMaxRmsNormGradDim) {
    return absl::UnimplementedError(absl::StrCat(kKernel, ": last dim ", dim,
                                                 " is past the CUDA kernel's ",
                                                 kMaxRmsNormGradDim));
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchRmsNormGrad(x.As<float>(), w.As<float>(), dy.As<float>(), dx.As<float>(),
                    dw.As<float>(), x.NumElements() / dim, dim, static_cast<float>(epsilon),
                    context->stream);
  return LaunchStatus(kKernel);
}

absl::Status RopeGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                      absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rope_grad";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckRope(kKernel, "dy", inputs, outputs));
  const TensorView& dy = inputs[0];
  const TensorView& cos = inputs[1];
  const TensorView& sin = inputs[2];
  const TensorView& dx = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(RopeBroadcast broadcast,
                          PlanRopeBroadcast(kKernel, "dy", dy, cos, sin));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchRopeGrad(dy.As<float>(), cos.As<float>(), sin.As<float>(), dx.As<float>(), broadcast,
                 context->stream);
  return LaunchStatus(kKernel);
}

absl::Status SwigluGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "swiglu_grad";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckSwigluGrad(inputs, outputs));
  const TensorView& gate = inputs[0];
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchSwigluGrad(gate.data, inputs[1].data, gate.dtype == DType::kBF16, inputs[2].As<float>(),
                   outputs[0].As<float>(), outputs[1].As<float>(), gate.NumElements(),
                   context->stream);
  return LaunchStatus(kKernel);
}

absl::Status AttentionGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "attention_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 4, 5, outputs, 3));
  // PlanAttentionShapes reads q, k, v at 0..2 and cu_seqlens at 3; dout sits
  // at 3.
  std::vector<TensorView> forward_inputs = {inputs[0], inputs[1], inputs[2]};
  if (inputs.size() == 5) forward_inputs.push_back(inputs[4]);
  VEOMNI_ASSIGN_OR_RETURN(cpu::AttentionGeometry geo,
                          cpu::PlanAttentionShapes(kKernel, attrs, forward_inputs));
  const TensorView& dout = inputs[3];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "dout", dout, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dout", dout,
                                    {geo.batch, geo.q_heads, geo.q_len, geo.value_dim}));
  const char* roles[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, roles[i], outputs[i], DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, roles[i], outputs[i], inputs[i].shape));
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  if (CudnnAttentionApplies(geo, inputs.size() == 5, *context)) {
    return CudnnAttentionGrad(geo, inputs[0].As<float>(), inputs[1].As<float>(),
                              inputs[2].As<float>(), dout.As<float>(), outputs[0].As<float>(),
                              outputs[1].As<float>(), outputs[2].As<float>(), context);
  }
  LaunchAttentionGrad(inputs[0].As<float>(), inputs[1].As<float>(), inputs[2].As<float>(),
                      dout.As<float>(), outputs[0].As<float>(), outputs[1].As<float>(),
                      outputs[2].As<float>(),
                      DeviceAttentionShape(geo, inputs.size() == 5 ? &inputs[4] : nullptr),
                      context->error_flags, context->stream);
  return LaunchStatus(kKernel);
}

absl::Status CrossEntropyGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                              absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cross_entropy_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 1));
  const TensorView& logits = inputs[0];
  const TensorView& dloss = inputs[2];
  const TensorView& dlogits = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(cpu::CrossEntropyPlan plan,
                          cpu::PlanCrossEntropyShapes(kKernel, attrs, logits, inputs[1]));
  bool per_token = plan.reduction == cpu::LossReduction::kNone;
  std::vector<int64_t> scalar_shape;
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "dloss", dloss, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kKernel, "dloss", dloss, per_token ? inputs[1].shape : scalar_shape));
  const bool bf16 = dlogits.dtype == DType::kBF16;
  if (!bf16) VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", dlogits, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", dlogits, logits.shape));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchCrossEntropyGrad(logits.As<float>(), DeviceIndicesOf(inputs[1]), dloss.As<float>(),
                         dlogits.data, bf16, plan.rows, plan.vocab, plan.ignore_index,
                         static_cast<int>(plan.reduction), context->error_flags,
                         context->stream);
  return LaunchStatus(kKernel);
}

absl::Status EmbeddingGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "embedding_grad";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckEmbeddingGrad(inputs, outputs));
  const TensorView& ids = inputs[0];
  const TensorView& dy = inputs[1];
  const TensorView& dtable = outputs[0];
  int64_t vocab = dtable.shape[0];
  int64_t hidden = dtable.shape[1];
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchEmbeddingGrad(DeviceIndicesOf(ids), dy.As<float>(), dtable.As<float>(), ids.NumElements(),
                      vocab, hidden, context->error_flags, context->stream);
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
