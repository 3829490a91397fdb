// The LLM ops on CUDA: the CPU kernels' operand checks (ModelCommon.h,
// KernelSupport.h), then the launchers of ModelLaunch.cu. Checks that read
// operand data (token ids, labels, cu_seqlens) happen on the device, which
// flags bad data in the context's error word.

#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudnnAttention.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ModelLaunch.h"
#include "runtime/kernels/cuda/ModelSupport.h"

namespace veomni::runtime::cuda {

using cpu::CheckArity;
using cpu::CheckDType;
using cpu::CheckRank;
using cpu::CheckShape;
using cpu::CheckSupportedDType;

DeviceIndices DeviceIndicesOf(const TensorView& tensor) {
  return DeviceIndices{tensor.data, tensor.dtype == DType::kI64};
}

absl::Status Embedding(const KernelAttrs&, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "embedding";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& table = inputs[0];
  const TensorView& ids = inputs[1];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckRank(kKernel, "table", table, 2));
  int64_t vocab = table.shape[0];
  int64_t hidden = table.shape[1];
  std::vector<int64_t> expected = ids.shape;
  expected.push_back(hidden);
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, table.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));
  VEOMNI_RETURN_IF_ERROR(cpu::CheckTokenIdsDType(kKernel, ids));
  int element_bytes = static_cast<int>(DTypeBytes(table.dtype));
  if (element_bytes != 1 && element_bytes != 2 && element_bytes != 4 && element_bytes != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": table has unknown dtype ", DTypeName(table.dtype)));
  }
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchEmbedding(table.data, DeviceIndicesOf(ids), out.data, ids.NumElements(), vocab, hidden,
                  element_bytes, context->error_flags, context->stream);
  return LaunchStatus(kKernel);
}

absl::Status RmsNorm(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rms_norm";
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, cpu::CheckRmsNorm(attrs, inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& y = outputs[0];
  int64_t dim = x.shape.back();
  if (dim == 0) return absl::OkStatus();
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchRmsNorm(x.As<float>(), w.As<float>(), y.As<float>(), x.NumElements() / dim, dim,
                static_cast<float>(epsilon), context->stream);
  return LaunchStatus(kKernel);
}

absl::StatusOr<RopeBroadcast> PlanRopeBroadcast(absl::string_view kernel, absl::string_view role,
                                                const TensorView& x, const TensorView& cos,
                                                const TensorView& sin) {
  // cpu::CheckRope has checked the operands; only the kernel's own limit is left.
  if (x.shape.size() > static_cast<size_t>(kMaxRopeRank)) {
    return absl::UnimplementedError(absl::StrCat(kernel, ": ", role, " has rank ",
                                                 x.shape.size(), ", more than the ",
                                                 kMaxRopeRank, " the CUDA kernel supports"));
  }
  RopeBroadcast broadcast;
  std::vector<int64_t> cos_strides = cpu::BroadcastStrides(cos.shape, x.shape);
  std::vector<int64_t> sin_strides = cpu::BroadcastStrides(sin.shape, x.shape);
  // x's dims over which cos and sin advance as one (or both stay) merge, and
  // dims of 1 drop: the kernels divide once per remaining dim per element.
  for (size_t d = 0; d < x.shape.size(); ++d) {
    const int64_t size = x.shape[d];
    if (size == 1) continue;
    const int last = broadcast.rank - 1;
    if (last >= 0 && broadcast.cos_strides[last] == cos_strides[d] * size &&
        broadcast.sin_strides[last] == sin_strides[d] * size) {
      broadcast.shape[last] *= size;
      broadcast.cos_strides[last] = cos_strides[d];
      broadcast.sin_strides[last] = sin_strides[d];
      continue;
    }
    broadcast.shape[broadcast.rank] = size;
    broadcast.cos_strides[broadcast.rank] = cos_strides[d];
    broadcast.sin_strides[broadcast.rank] = sin_strides[d];
    ++broadcast.rank;
  }
  broadcast.elements = x.NumElements();
  broadcast.half = x.shape.back() / 2;
  return broadcast;
}

absl::Status Rope(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rope";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckRope(kKernel, "x", inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& cos = inputs[1];
  const TensorView& sin = inputs[2];
  const TensorView& y = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(RopeBroadcast broadcast,
                          PlanRopeBroadcast(kKernel, "x", x, cos, sin));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchRope(x.As<float>(), cos.As<float>(), sin.As<float>(), y.As<float>(), broadcast,
             context->stream);
  return LaunchStatus(kKernel);
}

absl::Status Swiglu(const KernelAttrs&, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "swiglu";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckSwiglu(inputs, outputs));
  const TensorView& gate = inputs[0];
  const TensorView& up = inputs[1];
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchSwiglu(gate.data, up.data, outputs[0].data, gate.dtype == DType::kBF16,
               gate.NumElements(), context->stream);
  return LaunchStatus(kKernel);
}

AttentionShape DeviceAttentionShape(const cpu::AttentionGeometry& geometry,
                                    const TensorView* cu_seqlens) {
  AttentionShape shape;
  shape.batch = geometry.batch;
  shape.q_heads = geometry.q_heads;
  shape.kv_heads = geometry.kv_heads;
  shape.q_len = geometry.q_len;
  shape.kv_len = geometry.kv_len;
  shape.head_dim = geometry.head_dim;
  shape.value_dim = geometry.value_dim;
  shape.scale = static_cast<float>(geometry.scale);
  shape.causal = geometry.causal;
  if (cu_seqlens != nullptr) {
    shape.cu_seqlens = DeviceIndicesOf(*cu_seqlens);
    shape.num_offsets = geometry.num_offsets;
  }
  return shape;
}

absl::Status Attention(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "attention";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 4, outputs, 1));
  VEOMNI_ASSIGN_OR_RETURN(cpu::AttentionGeometry geo,
                          cpu::PlanAttentionShapes(kKernel, attrs, inputs));
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(
      kKernel, "output", out, {geo.batch, geo.q_heads, geo.q_len, geo.value_dim}));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  if (CudnnAttentionApplies(geo, inputs.size() == 4, *context)) {
    return CudnnAttention(geo, inputs[0].As<float>(), inputs[1].As<float>(),
                          inputs[2].As<float>(), out.As<float>(), context);
  }
  LaunchAttention(inputs[0].As<float>(), inputs[1].As<float>(), inputs[2].As<float>(),
                  out.As<float>(),
                  DeviceAttentionShape(geo, inputs.size() == 4 ? &inputs[3] : nullptr),
                  context->error_flags, context->stream);
  return LaunchStatus(kKernel);
}

absl::Status CrossEntropy(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                          absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cross_entropy";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& logits = inputs[0];
  const TensorView& out = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(cpu::CrossEntropyPlan plan,
                          cpu::PlanCrossEntropyShapes(kKernel, attrs, logits, inputs[1]));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, DType::kF32));
  bool per_token = plan.reduction == cpu::LossReduction::kNone;
  std::vector<int64_t> scalar_shape;
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kKernel, "output", out, per_token ? inputs[1].shape : scalar_shape));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));
  LaunchCrossEntropy(logits.As<float>(), DeviceIndicesOf(inputs[1]), out.As<float>(), plan.rows,
                     plan.vocab, plan.ignore_index, static_cast<int>(plan.reduction),
                     context->error_flags, context->stream);
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
