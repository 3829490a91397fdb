// matmul on the GPU (cuBLASLt) against the CPU kernel: every transpose
// combination, broadcast batches, and the bf16 compute of training.

#include <cmath>
#include <random>

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

TEST_F(CudaMatmulTest, Bf16WithoutCopiesPastTheCopyLimit) {
  // bf16 copies of these operands would pass Matmul.cpp's 768 MiB limit, so
  // cuBLASLt's FAST_16BF mode reads the f32 operands. The sum of K products of
  // |x| < 1 has a spread of about sqrt(K)/3; bf16 rounding moves it by about
  // sqrt(K)/4 * 2^-8, so 1e-2 sqrt(K) is ten times that, while a dropped
  // chunk of K would be off by thousands.
  const int64_t k = 140'000'000;
  Check({{1, k}, {k, 2}, {1, 2}, false, false}, cuda::MatmulPrecision::kBF16,
        1e-2 * std::sqrt(static_cast<double>(k)), 0.0);
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
