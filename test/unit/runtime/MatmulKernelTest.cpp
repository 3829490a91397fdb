// matmul against a triple loop over explicitly indexed operands, for every
// transpose combination and broadcast batch dims.

#include "KernelTestUtil.h"

#include <random>

#include "runtime/base/FloatBits.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::OwnedTensor;
using testing::RunKernel;

// Reads lhs[b..., i, p] / rhs[b..., p, j] through the (possibly transposed,
// possibly broadcast) stored layout, one element at a time.
std::vector<double> NaiveMatmul(const OwnedTensor& lhs, const OwnedTensor& rhs,
                                bool transpose_lhs, bool transpose_rhs,
                                const std::vector<int64_t>& out_shape) {
  size_t rank = out_shape.size();
  int64_t m = out_shape[rank - 2];
  int64_t n = out_shape[rank - 1];
  const std::vector<int64_t>& ls = lhs.shape();
  const std::vector<int64_t>& rs = rhs.shape();
  int64_t k = transpose_lhs ? ls[ls.size() - 2] : ls.back();
  std::vector<double> result;
  for (int64_t flat = 0; flat < testing::NumElementsOf(out_shape); ++flat) {
    std::vector<int64_t> index = testing::Unravel(out_shape, flat);
    int64_t i = index[rank - 2];
    int64_t j = index[rank - 1];
    double sum = 0;
    for (int64_t p = 0; p < k; ++p) {
      std::vector<int64_t> lhs_index = index;
      lhs_index[rank - 2] = transpose_lhs ? p : i;
      lhs_index[rank - 1] = transpose_lhs ? i : p;
      std::vector<int64_t> rhs_index = index;
      rhs_index[rank - 2] = transpose_rhs ? j : p;
      rhs_index[rank - 1] = transpose_rhs ? p : j;
      sum += double(lhs.Data<float>()[testing::BroadcastSource(ls, lhs_index)]) *
             rhs.Data<float>()[testing::BroadcastSource(rs, rhs_index)];
    }
    result.push_back(sum);
  }
  return result;
}

TEST(CpuMatmul, HandComputed2x2) {
  OwnedTensor a = F32({2, 2}, {1, 2, 3, 4});
  OwnedTensor b = F32({2, 2}, {5, 6, 7, 8});
  OwnedTensor out(DType::kF32, {2, 2});
  ASSERT_TRUE(RunKernel("matmul", {}, {&a, &b}, {&out}).ok());
  EXPECT_EQ(out.Values<float>(), (std::vector<float>{19, 22, 43, 50}));
}

TEST(CpuMatmul, AllTransposeCombinationsWithBroadcastBatch) {
  std::mt19937 rng(3);
  const int64_t m = 3, k = 5, n = 4;
  for (int tl = 0; tl < 2; ++tl) {
    for (int tr = 0; tr < 2; ++tr) {
      // lhs batch [2, 1], rhs batch [3]: output batch [2, 3].
      std::vector<int64_t> lhs_shape = {2, 1, tl ? k : m, tl ? m : k};
      std::vector<int64_t> rhs_shape = {3, tr ? n : k, tr ? k : n};
      OwnedTensor lhs = testing::RandomF32(lhs_shape, rng);
      OwnedTensor rhs = testing::RandomF32(rhs_shape, rng);
      std::vector<int64_t> out_shape = {2, 3, m, n};
      OwnedTensor out(DType::kF32, out_shape);
      KernelAttrs attrs;
      attrs.SetInt("transpose_lhs", tl);
      attrs.SetInt("transpose_rhs", tr);
      ASSERT_TRUE(RunKernel("matmul", attrs, {&lhs, &rhs}, {&out}).ok());
      EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                    NaiveMatmul(lhs, rhs, tl, tr, out_shape), 1e-6, 1e-6))
          << "transpose_lhs " << tl << " transpose_rhs " << tr;
    }
  }
}

TEST(CpuMatmul, RankTwoWeightAgainstBatchedActivations) {
  // The common linear layer: [B, S, H] x [O, H]^T.
  std::mt19937 rng(4);
  OwnedTensor x = testing::RandomF32({2, 3, 8}, rng);
  OwnedTensor w = testing::RandomF32({6, 8}, rng);
  OwnedTensor out(DType::kF32, {2, 3, 6});
  KernelAttrs attrs;
  attrs.SetInt("transpose_rhs", 1);
  ASSERT_TRUE(RunKernel("matmul", attrs, {&x, &w}, {&out}).ok());
  EXPECT_TRUE(testing::AllClose(out.Values<float>(), NaiveMatmul(x, w, false, true, {2, 3, 6}),
                                1e-6, 1e-6));
}

TEST(CpuMatmul, RejectsMismatchedContractingDims) {
  OwnedTensor a(DType::kF32, {4, 64});
  OwnedTensor b(DType::kF32, {32, 8});
  OwnedTensor out(DType::kF32, {4, 8});
  absl::Status status = RunKernel("matmul", {}, {&a, &b}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "matmul: contracting dims 64 and 32 differ (lhs [4, 64], rhs [32, 8])");
}

TEST(CpuMatmul, RejectsBadOutputBatchRankAndDType) {
  OwnedTensor a(DType::kF32, {2, 4, 5});
  OwnedTensor b(DType::kF32, {3, 5, 6});
  OwnedTensor out(DType::kF32, {2, 4, 6});
  EXPECT_EQ(RunKernel("matmul", {}, {&a, &b}, {&out}).message(),
            "matmul: shapes [2] and [3] do not broadcast");
  OwnedTensor b2(DType::kF32, {5, 6});
  OwnedTensor wrong(DType::kF32, {2, 6, 4});
  EXPECT_EQ(RunKernel("matmul", {}, {&a, &b2}, {&wrong}).message(),
            "matmul: output has shape [2, 6, 4], expected [2, 4, 6]");
  OwnedTensor vector(DType::kF32, {5});
  EXPECT_EQ(RunKernel("matmul", {}, {&a, &vector}, {&out}).code(),
            absl::StatusCode::kInvalidArgument);
  OwnedTensor ha(DType::kF16, {4, 5});
  OwnedTensor hb(DType::kF16, {5, 6});
  OwnedTensor hout(DType::kF16, {4, 6});
  EXPECT_EQ(RunKernel("matmul", {}, {&ha, &hb}, {&hout}).code(),
            absl::StatusCode::kUnimplemented);
  KernelAttrs bad;
  bad.SetInt("transpose_lhs", 3);
  EXPECT_EQ(RunKernel("matmul", bad, {&a, &b2}, {&out}).message(),
            "matmul: attribute 'transpose_lhs' is 3, expected 0 or 1");
}

TEST(CpuMatmul, Bf16OperandsMultiplyAsTheirF32Values) {
  // bf16 operands (vo-bf16-matmuls) widen exactly, so the product is the f32
  // kernel's on the widened values, bit for bit, in every transpose.
  std::mt19937 rng(5);
  for (int transposes = 0; transposes < 4; ++transposes) {
    const bool tl = transposes & 1, tr = transposes & 2;
    std::vector<int64_t> lhs_shape = tl ? std::vector<int64_t>{2, 7, 3} : std::vector<int64_t>{2, 3, 7};
    std::vector<int64_t> rhs_shape = tr ? std::vector<int64_t>{5, 7} : std::vector<int64_t>{7, 5};
    OwnedTensor lhs16 = testing::RoundedToBf16(testing::RandomF32(lhs_shape, rng));
    OwnedTensor rhs16 = testing::RoundedToBf16(testing::RandomF32(rhs_shape, rng));
    OwnedTensor lhs32 = F32(lhs_shape, testing::WidenedBf16(lhs16));
    OwnedTensor rhs32 = F32(rhs_shape, testing::WidenedBf16(rhs16));
    KernelAttrs attrs;
    attrs.SetInt("transpose_lhs", tl);
    attrs.SetInt("transpose_rhs", tr);
    OwnedTensor out16(DType::kF32, {2, 3, 5}), out32(DType::kF32, {2, 3, 5});
    ASSERT_TRUE(RunKernel("matmul", attrs, {&lhs16, &rhs16}, {&out16}).ok());
    ASSERT_TRUE(RunKernel("matmul", attrs, {&lhs32, &rhs32}, {&out32}).ok());
    EXPECT_EQ(out16.Values<float>(), out32.Values<float>()) << "transposes " << transposes;
    // The same against the naive loop (different rounding: double sums).
    std::vector<double> naive = NaiveMatmul(lhs32, rhs32, tl, tr, {2, 3, 5});
    std::vector<float> got = out16.Values<float>();
    for (size_t i = 0; i < naive.size(); ++i) EXPECT_NEAR(got[i], naive[i], 1e-6);
  }
}

TEST(CpuMatmul, Bf16OperandsGiveAnF32OrARoundedBf16Output) {
  std::mt19937 rng(8);
  OwnedTensor a = testing::RoundedToBf16(testing::RandomF32({4, 5}, rng));
  OwnedTensor b = testing::RoundedToBf16(testing::RandomF32({5, 6}, rng));
  OwnedTensor out32(DType::kF32, {4, 6}), out16(DType::kBF16, {4, 6});
  ASSERT_TRUE(RunKernel("matmul", {}, {&a, &b}, {&out32}).ok());
  ASSERT_TRUE(RunKernel("matmul", {}, {&a, &b}, {&out16}).ok());
  for (int64_t i = 0; i < 24; ++i)
    EXPECT_EQ(out16.Data<uint16_t>()[i], FloatToBFloat16Bits(out32.Data<float>()[i])) << i;
  // Operands of two types, or an f16 output, are refused.
  OwnedTensor b32(DType::kF32, {5, 6}), out_f16(DType::kF16, {4, 6});
  EXPECT_EQ(RunKernel("matmul", {}, {&a, &b32}, {&out32}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKernel("matmul", {}, {&a, &b}, {&out_f16}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace veomni::runtime
