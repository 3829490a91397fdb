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
// once, a few percent of a training-size GEMM. Copies that would pass the
// context's matmul_copy_bytes (the output projection's gradient, [tokens,
// vocab]) are made piece by piece instead (runtime/kernels/MatmulCopies.h);
// only a batched product or one no single split fits keeps the f32 operands
// and the FAST_16BF mode. bf16 operands (vo-bf16-matmuls rounded them) are
// multiplied as they are, at any precision setting.

#include <algorithm>
#include <utility>
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

cublasComputeType_t ComputeType(MatmulPrecision precision, cudaDataType_t operand_type) {
  // bf16 operands (copies, or rounded by the compiler) take plain f32
  // accumulation: cuBLASLt's FAST modes are for f32 operands.
  if (operand_type != CUDA_R_32F) return CUBLAS_COMPUTE_32F;
  switch (precision) {
    case MatmulPrecision::kBF16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
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

// out[batch] = op(lhs[batch]) op(rhs[batch]) (+ out[batch] when `accumulate`)
// for `count` batches whose elements start `lhs_stride`, `rhs_stride` and m*n
// apart; out's rows are `ldc` apart. The operands are of `operand_type` (f32,
// or bf16 copies), the output f32, or bf16 (`bf16_out`) from bf16 operands.
absl::Status LtMatmul(CudaContext& context, const GemmShape& shape, const void* lhs,
                      int64_t lhs_stride, const void* rhs, int64_t rhs_stride, void* out,
                      int64_t ldc, int32_t count, cudaDataType_t operand_type, bool accumulate,
                      bool bf16_out = false) {
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
      CublasStatus(cublasLtMatrixLayoutCreate(&d.c, bf16_out ? CUDA_R_16BF : CUDA_R_32F, n, m, ldc),
                   "matmul: layout"));
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
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  return CublasStatus(cublasLtMatmul(context.cublaslt, d.matmul, &alpha, rhs, d.a, lhs, d.b,
                                     &beta, out, d.c, out, d.c, &heuristic.algo,
                                     context.workspace, context.workspace_bytes, context.stream),
                      "matmul");
}

// The one product C = op(lhs) op(rhs) in the pieces of `plan`: each piece's
// operand blocks rounded into bf16 copies, then multiplied; a copy is made
// again only when its block changes, and depth pieces after the first
// accumulate into C.
absl::Status PiecewiseBf16Matmul(CudaContext& context, const GemmShape& shape, const float* lhs,
                                 const float* rhs, float* c, const MatmulCopyPlan& plan,
                                 StreamScratch& scratch) {
  const int64_t m = shape.m, n = shape.n, k = shape.k;
  const size_t a16 = scratch.Reserve(plan.m_chunk * plan.k_chunk * 2);
  const size_t b16 = scratch.Reserve(plan.k_chunk * plan.n_chunk * 2);
  VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
  void* a = scratch.At(a16);
  void* b = scratch.At(b16);
  // The (output row or column, depth) at which the copies' blocks start.
  std::pair<int64_t, int64_t> a_block{-1, -1}, b_block{-1, -1};
  for (int64_t m0 = 0; m0 < m; m0 += plan.m_chunk) {
    const int64_t mc = std::min(plan.m_chunk, m - m0);
    for (int64_t n0 = 0; n0 < n; n0 += plan.n_chunk) {
      const int64_t nc = std::min(plan.n_chunk, n - n0);
      for (int64_t k0 = 0; k0 < k; k0 += plan.k_chunk) {
        const int64_t kc = std::min(plan.k_chunk, k - k0);
        if (a_block != std::make_pair(m0, k0)) {
          if (shape.transpose_lhs) {  // stored [k, m]
            LaunchCastBlockToBf16(lhs + k0 * m + m0, kc, mc, m, a, context.stream);
          } else {
            LaunchCastBlockToBf16(lhs + m0 * k + k0, mc, kc, k, a, context.stream);
          }
          a_block = {m0, k0};
        }
        if (b_block != std::make_pair(n0, k0)) {
          if (shape.transpose_rhs) {  // stored [n, k]
            LaunchCastBlockToBf16(rhs + n0 * k + k0, nc, kc, k, b, context.stream);
          } else {
            LaunchCastBlockToBf16(rhs + k0 * n + n0, kc, nc, n, b, context.stream);
          }
          b_block = {n0, k0};
        }
        VEOMNI_RETURN_IF_ERROR(LaunchStatus("matmul"));
        VEOMNI_RETURN_IF_ERROR(LtMatmul(context,
                                        {mc, nc, kc, shape.transpose_lhs, shape.transpose_rhs},
                                        a, 0, b, 0, c + m0 * n + n0, n, 1, CUDA_R_16BF,
                                        /*accumulate=*/k0 > 0));
      }
    }
  }
  return absl::OkStatus();
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
  float* c = static_cast<float*>(out.data);  // f32, but bf16 below when out is
  const bool bf16_out = out.dtype == DType::kBF16;
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
  if (lhs.dtype == DType::kBF16) {  // rounded by the compiler (vo-bf16-matmuls)
    operand_type = CUDA_R_16BF;
    element = 2;
  } else if (context->matmul_precision == MatmulPrecision::kBF16) {
    MatmulCopyPlan pieces;
    const bool copies = PlanMatmulCopies(m, n, k, context->matmul_copy_bytes, &pieces);
    if (copies && count == 1) {
      return PiecewiseBf16Matmul(*context, shape, lhs.As<float>(), rhs.As<float>(), c, pieces,
                                 scratch);
    }
    // A batch is rounded whole when that fits, for one strided-batched call.
    const int64_t whole = AlignedCopyBytes(lhs.NumElements()) + AlignedCopyBytes(rhs.NumElements());
    if (whole <= context->matmul_copy_bytes) {
      size_t a16 = scratch.Reserve(lhs.NumElements() * 2);
      size_t b16 = scratch.Reserve(rhs.NumElements() * 2);
      VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
      LaunchCastBlockToBf16(lhs.As<float>(), 1, lhs.NumElements(), lhs.NumElements(),
                            scratch.At(a16), context->stream);
      LaunchCastBlockToBf16(rhs.As<float>(), 1, rhs.NumElements(), rhs.NumElements(),
                            scratch.At(b16), context->stream);
      VEOMNI_RETURN_IF_ERROR(LaunchStatus(kKernel));
      a = static_cast<const char*>(scratch.At(a16));
      b = static_cast<const char*>(scratch.At(b16));
      operand_type = CUDA_R_16BF;
      element = 2;
    }
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
                    b + rhs_offsets[0] * k * n * element, rhs_step * k * n, c, n,
                    static_cast<int32_t>(count), operand_type, /*accumulate=*/false, bf16_out);
  }
  for (int64_t i = 0; i < count; ++i) {
    VEOMNI_RETURN_IF_ERROR(LtMatmul(*context, shape, a + lhs_offsets[i] * m * k * element, 0,
                                    b + rhs_offsets[i] * k * n * element, 0,
                                    static_cast<char*>(out.data) + i * m * n * DTypeBytes(out.dtype),
                                    n, 1, operand_type, /*accumulate=*/false, bf16_out));
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cuda
