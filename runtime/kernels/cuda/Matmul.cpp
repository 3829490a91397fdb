// matmul through cuBLASLt, with the CPU kernel's operands and checks (see
// runtime/kernels/cpu/Matmul.cpp). Row-major C = op(A) op(B) is computed as
// the column-major C^T = op(B)^T op(A)^T, so no operand is copied. Batches
// whose operand offsets step evenly (the usual case, broadcasting included)
// are one strided-batched call; others are one call per batch.
//
// bf16 precision rounds both operands to bf16 copies in stream-ordered
// scratch and multiplies those natively (f32 accumulation and output).
// cuBLASLt's fp32-in, bf16-compute mode (CUBLAS_COMPUTE_32F_FAST_16BF) rounds
// the same way, but the dense benchmark's GEMMs averaged about 240 TFLOP/s
// with it on an H200, far from bf16 peak; native bf16 operands are what
// cuBLASLt's kernels are tuned for, and a cast reads and writes each operand
// once, a few percent of a training-size GEMM. Copies larger than
// kMaxBf16CopyBytes (the output projection's gradient, [tokens, vocab]) would
// add their size to the step's peak memory, so those calls keep the f32
// operands and cuBLASLt's FAST_16BF mode: the same rounding, slower.

#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/MatmulCommon.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ElementwiseLaunch.h"

namespace veomni::runtime::cuda {
namespace {

using cpu::BroadcastStrides;
using cpu::DimProduct;
using cpu::StridedIndexWalker;

constexpr size_t kMaxBf16CopyBytes = size_t{768} << 20;

// Whether a bf16 matmul rounds its operands into copies (or leaves it to
// cuBLASLt's FAST_16BF mode); veomni-compile's memory plan counts the same
// (compiler/CostModel.cpp).
bool CopiesToBf16(int64_t lhs_elements, int64_t rhs_elements) {
  return static_cast<size_t>(lhs_elements + rhs_elements) * 2 <= kMaxBf16CopyBytes;
}

cublasComputeType_t ComputeType(MatmulPrecision precision, cudaDataType_t operand_type) {
  switch (precision) {
    case MatmulPrecision::kBF16:
      if (operand_type == CUDA_R_32F) return CUBLAS_COMPUTE_32F_FAST_16BF;
      break;
    case MatmulPrecision::kTF32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MatmulPrecision::kF32:
      break;
  }
  return CUBLAS_COMPUTE_32F;
}

// Destroys cuBLASLt descriptors on every return path.
struct LtDescriptors {
  cublasLtMatmulDesc_t matmul = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtDescriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (matmul) cublasLtMatmulDescDestroy(matmul);
  }
};

absl::Status SetBatch(cublasLtMatrixLayout_t layout, int32_t count, int64_t stride) {
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                       sizeof(count)),
      "matmul: batch count"));
  return CublasStatus(cublasLtMatrixLayoutSetAttribute(
                          layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                          sizeof(stride)),
                      "matmul: batch stride");
}

struct GemmShape {
  int64_t m, n, k;
  bool transpose_lhs, transpose_rhs;
};

// out[batch] = op(lhs[batch]) op(rhs[batch]) for `count` batches whose
// elements start `lhs_stride`, `rhs_stride` and m*n apart; the operands are
// of `operand_type` (f32, or bf16 copies), the output f32.
absl::Status LtMatmul(CudaContext& context, const GemmShape& shape, const void* lhs,
                      int64_t lhs_stride, const void* rhs, int64_t rhs_stride, float* out,
                      int32_t count, cudaDataType_t operand_type) {
  const int64_t m = shape.m, n = shape.n, k = shape.k;
  LtDescriptors d;
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulDescCreate(&d.matmul, ComputeType(context.matmul_precision, operand_type), CUDA_R_32F),
      "matmul: descriptor"));
  // Column-major roles: A' = rhs (stored [K,N] or [N,K] row-major), B' = lhs.
  cublasOperation_t op_a = shape.transpose_rhs ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = shape.transpose_lhs ? CUBLAS_OP_T : CUBLAS_OP_N;
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulDescSetAttribute(d.matmul, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)),
      "matmul: transa"));
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulDescSetAttribute(d.matmul, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)),
      "matmul: transb"));
  // Stored (pre-op) column-major dims and leading dims.
  uint64_t a_rows = shape.transpose_rhs ? k : n, a_cols = shape.transpose_rhs ? n : k;
  uint64_t b_rows = shape.transpose_lhs ? m : k, b_cols = shape.transpose_lhs ? k : m;
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatrixLayoutCreate(&d.a, operand_type, a_rows, a_cols, a_rows), "matmul: layout"));
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatrixLayoutCreate(&d.b, operand_type, b_rows, b_cols, b_rows), "matmul: layout"));
  VEOMNI_RETURN_IF_ERROR(
      CublasStatus(cublasLtMatrixLayoutCreate(&d.c, CUDA_R_32F, n, m, n), "matmul: layout"));
  if (count > 1) {
    VEOMNI_RETURN_IF_ERROR(SetBatch(d.a, count, rhs_stride));
    VEOMNI_RETURN_IF_ERROR(SetBatch(d.b, count, lhs_stride));
    VEOMNI_RETURN_IF_ERROR(SetBatch(d.c, count, m * n));
  }
  VEOMNI_RETURN_IF_ERROR(
      CublasStatus(cublasLtMatmulPreferenceCreate(&d.preference), "matmul: preference"));
  uint64_t workspace = context.workspace_bytes;
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulPreferenceSetAttribute(d.preference,
                                           CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                           sizeof(workspace)),
      "matmul: workspace"));
  cublasLtMatmulHeuristicResult_t heuristic = {};
  int found = 0;
  VEOMNI_RETURN_IF_ERROR(CublasStatus(
      cublasLtMatmulAlgoGetHeuristic(context.cublaslt, d.matmul, d.a, d.b, d.c, d.c,
                                     d.preference, 1, &heuristic, &found),
      "matmul: algorithm"));
  if (found == 0) {
    return absl::UnimplementedError(absl::StrCat("matmul: cuBLASLt has no algorithm for m=", m,
                                                 " n=", n, " k=", k, " x", count));
  }
  const float alpha = 1.0f, beta = 0.0f;
  return CublasStatus(cublasLtMatmul(context.cublaslt, d.matmul, &alpha, rhs, d.a, lhs, d.b,
                                     &beta, out, d.c, out, d.c, &heuristic.algo,
                                     context.workspace, context.workspace_bytes, context.stream),
                      "matmul");
}

}  // namespace

absl::Status Matmul(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "matmul";
  VEOMNI_ASSIGN_OR_RETURN(cpu::MatmulPlan plan, cpu::PlanMatmul(attrs, inputs, outputs));
  const TensorView& lhs = inputs[0];
  const TensorView& rhs = inputs[1];
  const TensorView& out = outputs[0];
  GemmShape shape{plan.m, plan.n, plan.k, plan.transpose_lhs, plan.transpose_rhs};
  const std::vector<int64_t>& batch = plan.batch;
  const std::vector<int64_t>& lhs_batch = plan.lhs_batch;
  const std::vector<int64_t>& rhs_batch = plan.rhs_batch;
  VEOMNI_ASSIGN_OR_RETURN(CudaContext * context, RequireContext(kKernel));

  const int64_t m = shape.m, n = shape.n, k = shape.k;
  float* c = out.As<float>();
  int64_t count = DimProduct(batch, 0, batch.size());
  if (count == 0 || m == 0 || n == 0) return absl::OkStatus();
  if (k == 0) {
    return CudaStatus(cudaMemsetAsync(c, 0, out.Bytes(), context->stream), "matmul: zero k");
  }
  // Element pointers of the operands as cuBLASLt reads them.
  const char* a = static_cast<const char*>(lhs.data);
  const char* b = static_cast<const char*>(rhs.data);
  cudaDataType_t operand_type = CUDA_R_32F;
  size_t element = sizeof(float);
  StreamScratch scratch(context, kKernel);
  if (context->matmul_precision == MatmulPrecision::kBF16 &&
      CopiesToBf16(lhs.NumElements(), rhs.NumElements())) {
    size_t a16 = scratch.Reserve(lhs.NumElements() * 2), b16 = scratch.Reserve(rhs.NumElements() * 2);
    VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
    LaunchCast(CastType::kF32, lhs.data, CastType::kBF16, scratch.At(a16), lhs.NumElements(),
               context->stream);
    LaunchCast(CastType::kF32, rhs.data, CastType::kBF16, scratch.At(b16), rhs.NumElements(),
               context->stream);
    VEOMNI_RETURN_IF_ERROR(LaunchStatus(kKernel));
    a = static_cast<const char*>(scratch.At(a16));
    b = static_cast<const char*>(scratch.At(b16));
    operand_type = CUDA_R_16BF;
    element = 2;
  }
  // Each batch's operand offsets, in whole matrices.
  std::vector<int64_t> lhs_offsets, rhs_offsets;
  StridedIndexWalker walker(batch, {BroadcastStrides(lhs_batch, batch),
                                    BroadcastStrides(rhs_batch, batch)});
  for (int64_t i = 0; i < count; ++i, walker.Next()) {
    lhs_offsets.push_back(walker.Offset(0));
    rhs_offsets.push_back(walker.Offset(1));
  }
  auto even_step = [&](const std::vector<int64_t>& offsets) {
    for (int64_t i = 1; i < count; ++i) {
      if (offsets[i] - offsets[i - 1] != (count > 1 ? offsets[1] - offsets[0] : 0)) return false;
    }
    return true;
  };
  constexpr int64_t kMaxBatch = 1 << 30;
  if (count <= kMaxBatch && even_step(lhs_offsets) && even_step(rhs_offsets)) {
    int64_t lhs_step = count > 1 ? lhs_offsets[1] - lhs_offsets[0] : 0;
    int64_t rhs_step = count > 1 ? rhs_offsets[1] - rhs_offsets[0] : 0;
    return LtMatmul(*context, shape, a + lhs_offsets[0] * m * k * element, lhs_step * m * k,
                    b + rhs_offsets[0] * k * n * element, rhs_step * k * n, c,
                    static_cast<int32_t>(count), operand_type);
  }
  for (int64_t i = 0; i < count; ++i) {
    VEOMNI_RETURN_IF_ERROR(LtMatmul(*context, shape, a + lhs_offsets[i] * m * k * element, 0,
                                    b + rhs_offsets[i] * k * n * element, 0, c + i * m * n, 1,
                                    operand_type));
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cuda
