// matmul on the GPU (cuBLASLt) against the CPU kernel: every transpose
// combination, broadcast batches, and the bf16 compute of training.

#include <cmath>
#include <random>

#include "runtime/kernels/MatmulCopies.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"

namespace veomni::runtime::testing {
namespace {

struct MatmulCase {
  std::vector<int64_t> lhs, rhs, out;
  bool transpose_lhs, transpose_rhs;
};

class CudaMatmulTest : public GpuTest {
 protected:
  // Runs a case at `precision`; GPU and CPU must agree within atol + rtol|x|
  // where the CPU accumulates in double.
  void Check(const MatmulCase& c, cuda::MatmulPrecision precision, double atol, double rtol) {
    ASSERT_NE(cuda::CurrentCudaContext(), nullptr);
    ScopedPrecision scoped(precision);
    std::mt19937 rng(17);
    OwnedTensor lhs = RandomF32(c.lhs, rng), rhs = RandomF32(c.rhs, rng);
    OwnedTensor out(DType::kF32, c.out);
    KernelAttrs attrs;
    attrs.SetInt("transpose_lhs", c.transpose_lhs);
    attrs.SetInt("transpose_rhs", c.transpose_rhs);
    TwinResult result = RunTwins("matmul", attrs, {&lhs, &rhs}, {&out});
    EXPECT_TRUE(AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(), atol,
                         rtol));
  }
};

const MatmulCase kCases[] = {
    {{7, 5}, {5, 3}, {7, 3}, false, false},
    {{5, 7}, {5, 3}, {7, 3}, true, false},
    {{7, 5}, {3, 5}, {7, 3}, false, true},
    {{5, 7}, {3, 5}, {7, 3}, true, true},
    {{2, 3, 33, 64}, {2, 3, 64, 17}, {2, 3, 33, 17}, false, false},
    // The weight broadcast over the batch: one strided call with stride 0.
    {{4, 9, 32}, {32, 48}, {4, 9, 48}, false, false},
    // A broadcast that does not step evenly: one call per batch.
    {{2, 1, 6, 8}, {1, 3, 8, 5}, {2, 3, 6, 5}, false, false},
    {{1, 1}, {1, 1}, {1, 1}, false, false},
};

TEST_F(CudaMatmulTest, Fp32MatchesTheCpu) {
  // fp32 products summed over K <= 64 in float: about K * 2^-24 relative.
  for (const MatmulCase& c : kCases) Check(c, cuda::MatmulPrecision::kF32, 1e-5, 1e-5);
}

TEST_F(CudaMatmulTest, Bf16ComputeIsWithinBf16Rounding) {
  // Operands rounded to bf16 (8 bits): each product off by about 2^-8
  // relative; with |x| < 1 and K <= 64 terms the sum is off by well under
  // 64 * 2^-8 / sqrt(64) ~ 0.03 in the worst realistic case.
  for (const MatmulCase& c : kCases) Check(c, cuda::MatmulPrecision::kBF16, 3e-2, 1e-2);
}

TEST_F(CudaMatmulTest, Bf16OperandsMatchTheCpuAtEveryPrecision) {
  // Operands the compiler rounded (vo-bf16-matmuls) are multiplied as they
  // are, whatever the precision setting: the same bf16 values on both sides,
  // so only the f32 (GPU) against double (CPU) sums differ.
  for (cuda::MatmulPrecision precision :
       {cuda::MatmulPrecision::kBF16, cuda::MatmulPrecision::kTF32, cuda::MatmulPrecision::kF32}) {
    ScopedPrecision scoped(precision);
    std::mt19937 rng(29);
    for (const MatmulCase& c : kCases) {
      OwnedTensor lhs = RoundedToBf16(RandomF32(c.lhs, rng));
      OwnedTensor rhs = RoundedToBf16(RandomF32(c.rhs, rng));
      OwnedTensor out(DType::kF32, c.out);
      KernelAttrs attrs;
      attrs.SetInt("transpose_lhs", c.transpose_lhs);
      attrs.SetInt("transpose_rhs", c.transpose_rhs);
      TwinResult result = RunTwins("matmul", attrs, {&lhs, &rhs}, {&out});
      EXPECT_TRUE(AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(), 1e-5,
                           1e-5));
      // A bf16 output: the same sums rounded, one bf16 step (2^-8) apart at
      // most where f32 and double sums straddle a rounding boundary.
      OwnedTensor out16(DType::kBF16, c.out);
      TwinResult rounded = RunTwins("matmul", attrs, {&lhs, &rhs}, {&out16});
      EXPECT_TRUE(AllClose(WidenedBf16(rounded.gpu[0]), WidenedBf16(rounded.cpu[0]), 1e-5,
                           8e-3));
    }
  }
}

TEST_F(CudaMatmulTest, Bf16PastTheCopyLimitSplitsTheDepth) {
  // bf16 copies of these operands would pass the 768 MiB scratch limit, so
  // the product runs in depth pieces that accumulate into the output. The
  // sum of K products of |x| < 1 has a spread of about sqrt(K)/3; bf16
  // rounding moves it by about sqrt(K)/4 * 2^-8, so 1e-2 sqrt(K) is ten times
  // that, while a dropped piece of K would be off by thousands.
  const int64_t k = 140'000'000;
  Check({{1, k}, {k, 2}, {1, 2}, false, false}, cuda::MatmulPrecision::kBF16,
        1e-2 * std::sqrt(static_cast<double>(k)), 0.0);
}

// Lowers the scratch the test GPU's bf16 matmul copies may take.
class ScopedCopyLimit {
 public:
  explicit ScopedCopyLimit(int64_t bytes) : context_(cuda::CurrentCudaContext()) {
    saved_ = context_->matmul_copy_bytes;
    context_->matmul_copy_bytes = bytes;
  }
  ~ScopedCopyLimit() { context_->matmul_copy_bytes = saved_; }

 private:
  cuda::CudaContext* context_;
  int64_t saved_;
};

TEST_F(CudaMatmulTest, Bf16PiecesEqualTheWholeProduct) {
  // Under a small copy limit each case runs in pieces (MatmulCopies.h):
  // depth slices, row pieces with B copied once, column pieces with A copied
  // once, in every transpose; and a product no single split fits, which
  // keeps the f32 operands. The pieces round the same elements as whole
  // copies, so they must match the whole product up to the order of the f32
  // sums, and the CPU within bf16 rounding.
  struct PieceCase {
    int64_t m, n, k, limit;
    const char* split;
  };
  const PieceCase kPieces[] = {
      // Odd sizes: unaligned rows and short tails take the scalar rounding.
      {40, 24, 3001, 64 << 10, "depth"},
      {4001, 16, 300, 1 << 20, "rows"},
      {16, 4001, 301, 1 << 20, "columns"},
      {2000, 2000, 64, 256 << 10, "none (f32 operands)"},
  };
  ScopedPrecision scoped(cuda::MatmulPrecision::kBF16);
  for (const PieceCase& p : kPieces) {
    MatmulCopyPlan plan;
    const bool copies = PlanMatmulCopies(p.m, p.n, p.k, p.limit, &plan);
    const std::string split = !copies                 ? "none (f32 operands)"
                              : plan.k_chunk < p.k ? "depth"
                              : plan.m_chunk < p.m ? "rows"
                              : plan.n_chunk < p.n ? "columns"
                                                   : "whole";
    ASSERT_EQ(split, p.split) << p.m << " x " << p.n << " x " << p.k;
    for (int transposes = 0; transposes < 4; ++transposes) {
      const bool tl = transposes & 1, tr = transposes & 2;
      SCOPED_TRACE(::testing::Message() << p.m << " x " << p.n << " x " << p.k << " split "
                                        << p.split << " transposes " << tl << tr);
      std::mt19937 rng(23 + transposes);
      OwnedTensor lhs = RandomF32(tl ? std::vector<int64_t>{p.k, p.m} : std::vector<int64_t>{p.m, p.k}, rng);
      OwnedTensor rhs = RandomF32(tr ? std::vector<int64_t>{p.n, p.k} : std::vector<int64_t>{p.k, p.n}, rng);
      KernelAttrs attrs;
      attrs.SetInt("transpose_lhs", tl);
      attrs.SetInt("transpose_rhs", tr);
      // Garbage in the outputs: a first depth piece must not accumulate.
      OwnedTensor whole = F32({p.m, p.n}, std::vector<float>(p.m * p.n, 7.0f));
      OwnedTensor pieces = whole;
      ASSERT_TRUE(RunCudaKernel("matmul", attrs, {&lhs, &rhs}, {&whole}).ok());
      {
        ScopedCopyLimit limit(p.limit);
        ASSERT_TRUE(RunCudaKernel("matmul", attrs, {&lhs, &rhs}, {&pieces}).ok());
      }
      const double sqrt_k = std::sqrt(static_cast<double>(p.k));
      if (copies) {
        EXPECT_TRUE(AllClose(pieces.Values<float>(), whole.Values<float>(), 1e-5 * sqrt_k, 1e-5));
      }
      OwnedTensor cpu = whole;
      ASSERT_TRUE(RunKernel("matmul", attrs, {&lhs, &rhs}, {&cpu}).ok());
      EXPECT_TRUE(AllClose(pieces.Values<float>(), cpu.Values<float>(), 1e-2 * sqrt_k, 1e-2));
    }
  }
}

TEST_F(CudaMatmulTest, RejectsMismatchedContractingDims) {
  OwnedTensor lhs(DType::kF32, {4, 5}), rhs(DType::kF32, {6, 3}), out(DType::kF32, {4, 3});
  absl::Status status = RunCudaKernel("matmul", KernelAttrs(), {&lhs, &rhs}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("contracting dims 5 and 6 differ"), std::string::npos)
      << status;
}

}  // namespace
}  // namespace veomni::runtime::testing
