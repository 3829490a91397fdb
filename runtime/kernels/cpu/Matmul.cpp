// matmul {transpose_lhs, transpose_rhs}: lhs [..., M, K] (or [..., K, M]),
// rhs [..., K, N] (or [..., N, K]) -> [..., M, N]; batch dims broadcast.
// A reference kernel: transposed operands are packed, then an i-k-j loop with
// a double accumulator row keeps the inner loop contiguous.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/MatmulCommon.h"

namespace veomni::runtime::cpu {
namespace {

// Copies a row-major [rows, cols] matrix into `packed` as [cols, rows].
void PackTransposed(const float* matrix, int64_t rows, int64_t cols, std::vector<float>& packed) {
  packed.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) packed[c * rows + r] = matrix[r * cols + c];
  }
}

// out[M, N] = a[M, K] * b[K, N], all row-major.
void MultiplyMatrices(const float* a, const float* b, float* out, int64_t m, int64_t k,
                      int64_t n, std::vector<double>& row) {
  row.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    for (int64_t p = 0; p < k; ++p) {
      double scale = a[i * k + p];
      const float* b_row = b + p * n;
      for (int64_t j = 0; j < n; ++j) row[j] += scale * b_row[j];
    }
    for (int64_t j = 0; j < n; ++j) out[i * n + j] = static_cast<float>(row[j]);
  }
}

// The f32 elements of a matmul operand: its own, or its bf16 ones widened
// into `wide`.
const float* WidenBf16(const TensorView& tensor, std::vector<float>& wide) {
  if (tensor.dtype != DType::kBF16) return tensor.As<float>();
  const int64_t count = tensor.NumElements();
  wide.resize(static_cast<size_t>(count));
  const uint16_t* bits = tensor.As<uint16_t>();
  for (int64_t i = 0; i < count; ++i) wide[i] = BFloat16BitsToFloat(bits[i]);
  return wide.data();
}

absl::Status CheckMatrixRank(absl::string_view kernel, absl::string_view role,
                             const TensorView& tensor) {
  if (tensor.shape.size() >= 2) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", role, " has rank ",
                                                 tensor.shape.size(), " (shape ",
                                                 FormatShape(tensor.shape),
                                                 "), expected at least 2"));
}

}  // namespace

absl::StatusOr<MatmulPlan> PlanMatmul(const KernelAttrs& attrs,
                                      absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "matmul";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& lhs = inputs[0];
  const TensorView& rhs = inputs[1];
  const TensorView& out = outputs[0];
  MatmulPlan plan;
  VEOMNI_ASSIGN_OR_RETURN(plan.transpose_lhs,
                          OptionalFlag(kKernel, attrs, "transpose_lhs", false));
  VEOMNI_ASSIGN_OR_RETURN(plan.transpose_rhs,
                          OptionalFlag(kKernel, attrs, "transpose_rhs", false));
  const bool transpose_lhs = plan.transpose_lhs, transpose_rhs = plan.transpose_rhs;
  // f32 operands, or bf16 ones (vo-bf16-matmuls) with f32 accumulation and an
  // f32 or bf16 output.
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, lhs.dtype, {DType::kF32, DType::kBF16}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "rhs", rhs, lhs.dtype));
  if (out.dtype != lhs.dtype) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, DType::kF32));
  }
  VEOMNI_RETURN_IF_ERROR(CheckMatrixRank(kKernel, "lhs", lhs));
  VEOMNI_RETURN_IF_ERROR(CheckMatrixRank(kKernel, "rhs", rhs));

  size_t lhs_rank = lhs.shape.size();
  size_t rhs_rank = rhs.shape.size();
  plan.m = transpose_lhs ? lhs.shape[lhs_rank - 1] : lhs.shape[lhs_rank - 2];
  int64_t lhs_k = transpose_lhs ? lhs.shape[lhs_rank - 2] : lhs.shape[lhs_rank - 1];
  int64_t rhs_k = transpose_rhs ? rhs.shape[rhs_rank - 1] : rhs.shape[rhs_rank - 2];
  plan.n = transpose_rhs ? rhs.shape[rhs_rank - 2] : rhs.shape[rhs_rank - 1];
  if (lhs_k != rhs_k) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": contracting dims ", lhs_k, " and ", rhs_k, " differ (lhs ",
                     FormatShape(lhs.shape), transpose_lhs ? " transposed" : "", ", rhs ",
                     FormatShape(rhs.shape), transpose_rhs ? " transposed" : "", ")"));
  }
  plan.k = lhs_k;
  plan.lhs_batch.assign(lhs.shape.begin(), lhs.shape.end() - 2);
  plan.rhs_batch.assign(rhs.shape.begin(), rhs.shape.end() - 2);
  VEOMNI_ASSIGN_OR_RETURN(plan.batch,
                          BroadcastShapes(kKernel, {plan.lhs_batch, plan.rhs_batch}));
  std::vector<int64_t> expected = plan.batch;
  expected.push_back(plan.m);
  expected.push_back(plan.n);
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));
  return plan;
}

absl::Status Matmul(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(MatmulPlan plan, PlanMatmul(attrs, inputs, outputs));
  const TensorView& lhs = inputs[0];
  const TensorView& rhs = inputs[1];
  const TensorView& out = outputs[0];
  const bool transpose_lhs = plan.transpose_lhs, transpose_rhs = plan.transpose_rhs;
  const int64_t m = plan.m, n = plan.n, k = plan.k;
  const std::vector<int64_t>& batch = plan.batch;
  const std::vector<int64_t>& lhs_batch = plan.lhs_batch;
  const std::vector<int64_t>& rhs_batch = plan.rhs_batch;

  // Offsets count whole matrices; scaled by the matrix sizes below.
  StridedIndexWalker walker(batch, {BroadcastStrides(lhs_batch, batch),
                                    BroadcastStrides(rhs_batch, batch)});
  int64_t batch_count = DimProduct(batch, 0, batch.size());
  // bf16 operands widen to f32 exactly, once.
  std::vector<float> wide_lhs, wide_rhs;
  const float* lhs_data = WidenBf16(lhs, wide_lhs);
  const float* rhs_data = WidenBf16(rhs, wide_rhs);
  std::vector<float> packed_lhs, packed_rhs, wide_out;
  std::vector<double> row;
  // A bf16 output is summed in f32, then rounded.
  if (out.dtype == DType::kBF16) wide_out.resize(static_cast<size_t>(out.NumElements()));
  float* result = out.dtype == DType::kBF16 ? wide_out.data() : out.As<float>();
  for (int64_t b = 0; b < batch_count; ++b, walker.Next()) {
    const float* a = lhs_data + walker.Offset(0) * m * k;
    const float* bm = rhs_data + walker.Offset(1) * k * n;
    if (transpose_lhs) {
      PackTransposed(a, k, m, packed_lhs);
      a = packed_lhs.data();
    }
    if (transpose_rhs) {
      PackTransposed(bm, n, k, packed_rhs);
      bm = packed_rhs.data();
    }
    MultiplyMatrices(a, bm, result + b * m * n, m, k, n, row);
  }
  if (out.dtype == DType::kBF16) {
    for (int64_t i = 0; i < out.NumElements(); ++i) StoreFloatAt(out, i, result[i]);
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
