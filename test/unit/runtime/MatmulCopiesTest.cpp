// The piece plan of the GPU's bf16 matmul copies (runtime/kernels/MatmulCopies.h):
// every plan fits its limit and covers the product, its counts agree with a
// walk of the loops runtime/kernels/cuda/Matmul.cpp runs, and the output
// projection's products split the way that moves the fewest bytes.

#include "runtime/kernels/MatmulCopies.h"

#include <algorithm>
#include <utility>

#include "gtest/gtest.h"

namespace veomni::runtime {
namespace {

// The counts of PiecewiseBf16Matmul's loops: elements rounded (a block is
// rounded again only when it changes) and outputs read back by depth pieces.
std::pair<int64_t, int64_t> WalkPieces(int64_t m, int64_t n, int64_t k,
                                       const MatmulCopyPlan& plan) {
  int64_t rounded = 0, reread = 0;
  std::pair<int64_t, int64_t> a_block{-1, -1}, b_block{-1, -1};
  for (int64_t m0 = 0; m0 < m; m0 += plan.m_chunk) {
    for (int64_t n0 = 0; n0 < n; n0 += plan.n_chunk) {
      for (int64_t k0 = 0; k0 < k; k0 += plan.k_chunk) {
        const int64_t mc = std::min(plan.m_chunk, m - m0), nc = std::min(plan.n_chunk, n - n0),
                      kc = std::min(plan.k_chunk, k - k0);
        if (a_block != std::make_pair(m0, k0)) rounded += mc * kc;
        if (b_block != std::make_pair(n0, k0)) rounded += kc * nc;
        a_block = {m0, k0};
        b_block = {n0, k0};
        if (k0 > 0) reread += mc * nc;
      }
    }
  }
  return {rounded, reread};
}

TEST(MatmulCopiesTest, SmallProductsAreCopiedWhole) {
  MatmulCopyPlan plan;
  ASSERT_TRUE(PlanMatmulCopies(7, 3, 5, kMatmulCopyBytes, &plan));
  EXPECT_EQ(plan.m_chunk, 7);
  EXPECT_EQ(plan.n_chunk, 3);
  EXPECT_EQ(plan.k_chunk, 5);
  EXPECT_EQ(plan.scratch_bytes, 256 + 256);  // two aligned blocks
  EXPECT_EQ(plan.rounded_elements, 7 * 5 + 5 * 3);
  EXPECT_EQ(plan.reread_outputs, 0);
}

TEST(MatmulCopiesTest, EveryPlanFitsCoversAndCountsItsLoops) {
  const int64_t dims[] = {1, 63, 256, 1000, 4096, 20000, 151936};
  const int64_t limits[] = {64 << 10, 1 << 20, 16 << 20, kMatmulCopyBytes};
  int planned = 0, split = 0;
  for (int64_t limit : limits) {
    for (int64_t m : dims) {
      for (int64_t n : dims) {
        for (int64_t k : dims) {
          SCOPED_TRACE(::testing::Message() << m << " x " << n << " x " << k << " limit " << limit);
          MatmulCopyPlan plan;
          if (!PlanMatmulCopies(m, n, k, limit, &plan)) continue;
          ++planned;
          EXPECT_LE(plan.scratch_bytes, limit);
          EXPECT_EQ(plan.scratch_bytes, AlignedCopyBytes(plan.m_chunk * plan.k_chunk) +
                                            AlignedCopyBytes(plan.k_chunk * plan.n_chunk));
          const int splits = (plan.m_chunk < m) + (plan.n_chunk < n) + (plan.k_chunk < k);
          EXPECT_LE(splits, 1);
          split += splits;
          for (auto [chunk, length] : {std::pair{plan.m_chunk, m}, std::pair{plan.n_chunk, n},
                                       std::pair{plan.k_chunk, k}}) {
            EXPECT_GT(chunk, 0);
            EXPECT_LE(chunk, length);
            if (chunk < length) {
              EXPECT_EQ(chunk % 64, 0);
              EXPECT_GE(chunk, 256);
            }
          }
          auto [rounded, reread] = WalkPieces(m, n, k, plan);
          EXPECT_EQ(plan.rounded_elements, rounded);
          EXPECT_EQ(plan.reread_outputs, reread);
        }
      }
    }
  }
  // The grid holds both whole copies and splits.
  EXPECT_GT(planned, split);
  EXPECT_GT(split, 0);
}

TEST(MatmulCopiesTest, OutputProjectionSplitsWhereItMovesLeast) {
  // Qwen3's vocabulary 151936, hidden 2048, 4096 tokens: logits = x W^T is
  // copied whole (16 MiB + 594 MiB); dx = dlogits W slices the vocabulary (a
  // depth split: the [4096, 2048] output is cheap to read back, and pieces of
  // its rows that fit beside W would be too small to fill the GPU); dW =
  // dlogits^T x splits W's rows, x (16 MiB) copied once.
  const int64_t tokens = 4096, hidden = 2048, vocab = 151936;
  MatmulCopyPlan logits, dx, dw;
  ASSERT_TRUE(PlanMatmulCopies(tokens, vocab, hidden, kMatmulCopyBytes, &logits));
  EXPECT_EQ(logits.k_chunk, hidden);
  EXPECT_EQ(logits.n_chunk, vocab);
  EXPECT_EQ(logits.m_chunk, tokens);

  ASSERT_TRUE(PlanMatmulCopies(tokens, hidden, vocab, kMatmulCopyBytes, &dx));
  EXPECT_EQ(dx.m_chunk, tokens);
  EXPECT_EQ(dx.n_chunk, hidden);
  EXPECT_EQ((vocab + dx.k_chunk - 1) / dx.k_chunk, 3);
  EXPECT_EQ(dx.rounded_elements, tokens * vocab + vocab * hidden);  // each element once

  ASSERT_TRUE(PlanMatmulCopies(vocab, hidden, tokens, kMatmulCopyBytes, &dw));
  EXPECT_EQ(dw.k_chunk, tokens);  // no read-back of the 1.2 GB output
  EXPECT_EQ((vocab + dw.m_chunk - 1) / dw.m_chunk, 2);
  EXPECT_EQ(dw.reread_outputs, 0);
  EXPECT_EQ(dw.rounded_elements, vocab * tokens + tokens * hidden);
}

TEST(MatmulCopiesTest, NoSplitOfOneDimensionFitsGivesNoPlan) {
  // Both operands larger than the limit and a depth too short to slice.
  MatmulCopyPlan plan;
  EXPECT_FALSE(PlanMatmulCopies(2000, 2000, 64, 256 << 10, &plan));
}

}  // namespace
}  // namespace veomni::runtime
