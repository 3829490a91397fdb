//===- HostTensorTest.cpp - importer constant folding vs naive loops ------===//

#include "frontends/common/HostTensor.h"

#include "gtest/gtest.h"

#include <numeric>
#include <random>

using namespace veomni;

namespace {

HostTensor iota(llvm::ArrayRef<int64_t> shape, HostDType dtype = HostDType::F32) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  std::vector<double> values(count);
  std::iota(values.begin(), values.end(), 1.0);
  return HostTensor::fromDouble(dtype, shape, values);
}

int64_t flatIndex(llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<int64_t> index) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

TEST(HostTensor, BroadcastAddMatchesNaiveLoop) {
  HostTensor a = iota({2, 1, 4});
  HostTensor b = iota({3, 1});
  auto sum = foldElementwise("add", a, b);
  ASSERT_TRUE(static_cast<bool>(sum)) << llvm::toString(sum.takeError());
  EXPECT_EQ(sum->shape(), llvm::ArrayRef<int64_t>({2, 3, 4}));
  std::vector<double> av = a.toDouble(), bv = b.toDouble(), out = sum->toDouble();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k)
        EXPECT_EQ(out[(i * 3 + j) * 4 + k], av[i * 4 + k] + bv[j])
            << i << "," << j << "," << k;
}

TEST(HostTensor, IntegerOpsStayExact) {
  HostTensor big = HostTensor::fromInt64({1}, {INT64_MAX});
  HostTensor one = HostTensor::fromInt64({1}, {1});
  auto diff = foldElementwise("sub", big, one);
  ASSERT_TRUE(static_cast<bool>(diff));
  EXPECT_EQ(diff->toInt64()[0], INT64_MAX - 1);
  auto quotient = foldElementwise("div", HostTensor::fromInt64({2}, {-7, 7}),
                                  HostTensor::fromInt64({}, {2}));
  ASSERT_TRUE(static_cast<bool>(quotient));
  EXPECT_EQ(quotient->toInt64(), (std::vector<int64_t>{-3, 3}));
  auto byZero = foldElementwise("div", one, HostTensor::fromInt64({1}, {0}));
  EXPECT_FALSE(static_cast<bool>(byZero));
  llvm::consumeError(byZero.takeError());
}

TEST(HostTensor, ComparisonsGiveBool) {
  auto lt = foldElementwise("lt", HostTensor::fromInt64({3}, {1, 5, 3}),
                            HostTensor::fromInt64({}, {3}));
  ASSERT_TRUE(static_cast<bool>(lt));
  EXPECT_EQ(lt->dtype(), HostDType::Bool);
  EXPECT_EQ(lt->toInt64(), (std::vector<int64_t>{1, 0, 0}));
}

TEST(HostTensor, BroadcastErrorNamesShapes) {
  auto bad = foldElementwise("mul", iota({2, 3}), iota({4}));
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()),
            "cannot broadcast shapes [2, 3] and [4]");
}

TEST(HostTensor, TransposeMatchesNaiveIndexing) {
  HostTensor x = iota({2, 3, 4});
  HostTensor t = transposeHost(x, {2, 0, 1});
  EXPECT_EQ(t.shape(), llvm::ArrayRef<int64_t>({4, 2, 3}));
  std::vector<double> in = x.toDouble(), out = t.toDouble();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k)
        EXPECT_EQ(out[flatIndex({4, 2, 3}, {i, j, k})],
                  in[flatIndex({2, 3, 4}, {j, k, i})]);
}

TEST(HostTensor, SliceMatchesNaiveIndexing) {
  HostTensor x = iota({5, 6});
  HostTensor s = sliceHost(x, {1, 0}, {5, 6}, {2, 3});
  EXPECT_EQ(s.shape(), llvm::ArrayRef<int64_t>({2, 2}));
  EXPECT_EQ(s.toDouble(),
            (std::vector<double>{x.toDouble()[6], x.toDouble()[9],
                                 x.toDouble()[18], x.toDouble()[21]}));
}

TEST(HostTensor, GatherAndConcat) {
  HostTensor table = iota({4, 2});
  auto rows = gatherHost(table, HostTensor::fromInt64({3}, {3, -4, 1}), 0);
  ASSERT_TRUE(static_cast<bool>(rows));
  EXPECT_EQ(rows->toDouble(), (std::vector<double>{7, 8, 1, 2, 3, 4}));
  auto outOfRange = gatherHost(table, HostTensor::fromInt64({1}, {4}), 0);
  EXPECT_FALSE(static_cast<bool>(outOfRange));
  llvm::consumeError(outOfRange.takeError());

  auto joined = concatHost({iota({2, 1}), iota({2, 2})}, 1);
  ASSERT_TRUE(static_cast<bool>(joined));
  EXPECT_EQ(joined->toDouble(), (std::vector<double>{1, 1, 2, 2, 3, 4}));
}

TEST(HostTensor, SelectBroadcasts) {
  HostTensor cond = HostTensor::fromInt64({2, 1}, {1, 0}).castTo(HostDType::Bool);
  auto picked = foldSelect(cond, iota({3}), HostTensor::fromDouble(HostDType::F32, {}, {-1}));
  ASSERT_TRUE(static_cast<bool>(picked));
  EXPECT_EQ(picked->toDouble(), (std::vector<double>{1, 2, 3, -1, -1, -1}));
}

TEST(HostTensor, Bf16AndF16RoundTripExactValues) {
  // Values exactly representable in both formats survive a round trip.
  std::vector<double> values = {0.0, -1.5, 2.0, 0.25, 96.0, -1024.0};
  for (HostDType dtype : {HostDType::BF16, HostDType::F16}) {
    HostTensor t = HostTensor::fromDouble(dtype, {6}, values);
    EXPECT_EQ(t.bytes().size(), 12u);
    EXPECT_EQ(t.toDouble(), values) << hostDTypeName(dtype).str();
  }
  // bf16 keeps 8 mantissa bits: 1 + 2^-9 rounds to 1 (ties to even).
  HostTensor rounded = HostTensor::fromDouble(HostDType::BF16, {1}, {1.0 + 1.0 / 512});
  EXPECT_EQ(rounded.toDouble()[0], 1.0);
}

TEST(HostTensor, RandomBroadcastShapesAgreeWithElementwiseDefinition) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 3);
  for (int trial = 0; trial < 50; ++trial) {
    llvm::SmallVector<int64_t> out = {dim(rng), dim(rng), dim(rng)};
    llvm::SmallVector<int64_t> lhs = out, rhs(out.begin() + 1, out.end());
    lhs[trial % 3] = 1; // broadcast one axis of lhs
    auto product = foldElementwise("mul", iota(lhs), iota(rhs));
    ASSERT_TRUE(static_cast<bool>(product));
    // rhs has no leading axis, so a size-1 leading lhs axis stays 1.
    out[0] = lhs[0];
    ASSERT_EQ(product->shape(), llvm::ArrayRef<int64_t>(out));
    std::vector<double> l = iota(lhs).toDouble(), r = iota(rhs).toDouble();
    std::vector<double> p = product->toDouble();
    for (int64_t i = 0; i < out[0]; ++i)
      for (int64_t j = 0; j < out[1]; ++j)
        for (int64_t k = 0; k < out[2]; ++k) {
          int64_t li = flatIndex(lhs, {lhs[0] == 1 ? 0 : i, lhs[1] == 1 ? 0 : j,
                                       lhs[2] == 1 ? 0 : k});
          EXPECT_EQ(p[flatIndex(out, {i, j, k})], l[li] * r[j * out[2] + k]);
        }
  }
}

} // namespace
