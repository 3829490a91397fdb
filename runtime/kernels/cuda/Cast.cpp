// cast on CUDA: the CPU kernel's checks, then a launch whose device code
// (ElementwiseLaunch.cu) repeats the CPU's conversions bit for bit.

#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ElementwiseLaunch.h"

namespace veomni::runtime::cuda {
namespace {

// False for a value outside the DType enum (a corrupt artifact).
bool ToCastType(DType dtype, CastType* type) {
  switch (dtype) {
    case DType::kF32: *type = CastType::kF32; return true;
    case DType::kBF16: *type = CastType::kBF16; return true;
    case DType::kF16: *type = CastType::kF16; return true;
    case DType::kI64: *type = CastType::kI64; return true;
    case DType::kI32: *type = CastType::kI32; return true;
    case DType::kI1: *type = CastType::kI1; return true;
  }
  return false;
}

}  // namespace

absl::Status Cast(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cast";
  VEOMNI_RETURN_IF_ERROR(cpu::CheckArity(kKernel, inputs, 1, 1, outputs, 1));
  const TensorView& in = inputs[0];
  const TensorView& out = outputs[0];
  CastType from, to;
  if (!ToCastType(in.dtype, &from)) return cpu::UnimplementedDType(kKernel, in.dtype);
  if (!ToCastType(out.dtype, &to)) return cpu::UnimplementedDType(kKernel, out.dtype);
  VEOMNI_RETURN_IF_ERROR(cpu::CheckShape(kKernel, "output", out, in.shape));
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * ctx, RequireContext(kKernel));
  if (from == CastType::kF32 && to == CastType::kBF16) {
    // Mixed precision's rounding of matmul operands: 4 elements a thread.
    LaunchCastBlockToBf16(in.As<float>(), 1, in.NumElements(), in.NumElements(), out.data,
                          ctx->stream);
  } else {
    LaunchCast(from, in.data, to, out.data, in.NumElements(), ctx->stream);
  }
  return LaunchStatus(kKernel);
}

}  // namespace veomni::runtime::cuda
