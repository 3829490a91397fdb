// matmul {transpose_lhs, transpose_rhs}: lhs [..., M, K] (or [..., K, M]),
// rhs [..., K, N] (or [..., N, K]) -> [..., M, N]; batch dims broadcast.
// A reference kernel: transposed operands are packed, then an i-k-j loop with
// a double accumulator row keeps the inner loop contiguous.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"

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

absl::Status CheckMatrixRank(absl::string_view kernel, absl::string_view role,
                             const TensorView& tensor) {
  if (tensor.shape.size() >= 2) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", role, " has rank ",
                                                 tensor.shape.size(), " (shape ",
                                                 FormatShape(tensor.shape),
                                                 "), expected at least 2"));
}

}  // namespace

absl::Status Matmul(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "matmul";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& lhs = inputs[0];
  const TensorView& rhs = inputs[1];
  const TensorView& out = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(bool transpose_lhs,
                          OptionalFlag(kKernel, attrs, "transpose_lhs", false));
  VEOMNI_ASSIGN_OR_RETURN(bool transpose_rhs,
                          OptionalFlag(kKernel, attrs, "transpose_rhs", false));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "rhs", rhs, lhs.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, lhs.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, lhs.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckMatrixRank(kKernel, "lhs", lhs));
  VEOMNI_RETURN_IF_ERROR(CheckMatrixRank(kKernel, "rhs", rhs));

  size_t lhs_rank = lhs.shape.size();
  size_t rhs_rank = rhs.shape.size();
  int64_t m = transpose_lhs ? lhs.shape[lhs_rank - 1] : lhs.shape[lhs_rank - 2];
  int64_t lhs_k = transpose_lhs ? lhs.shape[lhs_rank - 2] : lhs.shape[lhs_rank - 1];
  int64_t rhs_k = transpose_rhs ? rhs.shape[rhs_rank - 1] : rhs.shape[rhs_rank - 2];
  int64_t n = transpose_rhs ? rhs.shape[rhs_rank - 2] : rhs.shape[rhs_rank - 1];
  if (lhs_k != rhs_k) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKernel, ": contracting dims ", lhs_k, " and ", rhs_k, " differ (lhs ",
                     FormatShape(lhs.shape), transpose_lhs ? " transposed" : "", ", rhs ",
                     FormatShape(rhs.shape), transpose_rhs ? " transposed" : "", ")"));
  }
  int64_t k = lhs_k;
  absl::Span<const int64_t> lhs_batch(lhs.shape.data(), lhs_rank - 2);
  absl::Span<const int64_t> rhs_batch(rhs.shape.data(), rhs_rank - 2);
  VEOMNI_ASSIGN_OR_RETURN(std::vector<int64_t> batch,
                          BroadcastShapes(kKernel, {lhs_batch, rhs_batch}));
  std::vector<int64_t> expected = batch;
  expected.push_back(m);
  expected.push_back(n);
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));

  // Offsets count whole matrices; scaled by the matrix sizes below.
  StridedIndexWalker walker(batch, {BroadcastStrides(lhs_batch, batch),
                                    BroadcastStrides(rhs_batch, batch)});
  int64_t batch_count = DimProduct(batch, 0, batch.size());
  std::vector<float> packed_lhs, packed_rhs;
  std::vector<double> row;
  for (int64_t b = 0; b < batch_count; ++b, walker.Next()) {
    const float* a = lhs.As<float>() + walker.Offset(0) * m * k;
    const float* bm = rhs.As<float>() + walker.Offset(1) * k * n;
    if (transpose_lhs) {
      PackTransposed(a, k, m, packed_lhs);
      a = packed_lhs.data();
    }
    if (transpose_rhs) {
      PackTransposed(bm, n, k, packed_rhs);
      bm = packed_rhs.data();
    }
    MultiplyMatrices(a, bm, out.As<float>() + b * m * n, m, k, n, row);
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
