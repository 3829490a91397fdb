// Where the kernels' stream waits for collectives left running
// (PlanCollectiveJoins): only for the latest collective a command touches.

#include "runtime/executor/CollectiveJoins.h"

#include "gtest/gtest.h"

namespace veomni::runtime {
namespace {

using Kind = JoinStep::Kind;

JoinStep Step(Kind kind, std::vector<ByteRange> touched) { return JoinStep{kind, touched}; }

TEST(CollectiveJoins, KernelsThatTouchNoPendingBytesDoNotWait) {
  std::vector<int> joins = PlanCollectiveJoins({
      Step(Kind::kDeferredCollective, {{0, 100}, {100, 300}}),
      Step(Kind::kKernel, {{300, 400}, {500, 600}}),
      Step(Kind::kKernel, {{99, 100}}),  // the last byte of the input
  });
  EXPECT_EQ(joins, (std::vector<int>{-1, -1, 0}));
}

TEST(CollectiveJoins, WaitsForTheLatestTouchedCollectiveOnly) {
  // A prefetched gather (ordinal 1) runs on while the kernel that reads the
  // first gather's output waits for that one alone.
  std::vector<int> joins = PlanCollectiveJoins({
      Step(Kind::kDeferredCollective, {{0, 10}, {100, 120}}),   // 0
      Step(Kind::kDeferredCollective, {{10, 20}, {200, 220}}),  // 1
      Step(Kind::kKernel, {{100, 120}, {1000, 1100}}),
      Step(Kind::kDeferredCollective, {{1000, 1100}, {300, 310}}),  // 2
      Step(Kind::kKernel, {{200, 220}}),
      // Collective 1 was joined; collective 0 before it too.
      Step(Kind::kKernel, {{0, 10}, {10, 20}}),
      Step(Kind::kKernel, {{300, 310}}),
  });
  EXPECT_EQ(joins, (std::vector<int>{-1, -1, 0, -1, 1, -1, 2}));
}

TEST(CollectiveJoins, ATouchOfAnEarlierCollectiveAlsoRetiresTheOnesBefore) {
  std::vector<int> joins = PlanCollectiveJoins({
      Step(Kind::kDeferredCollective, {{0, 10}}),   // 0
      Step(Kind::kDeferredCollective, {{20, 30}}),  // 1
      Step(Kind::kDeferredCollective, {{40, 50}}),  // 2
      Step(Kind::kKernel, {{25, 26}, {5, 6}}),      // waits through 1
      Step(Kind::kKernel, {{0, 30}}),               // nothing left there
      Step(Kind::kKernel, {{45, 46}}),
  });
  EXPECT_EQ(joins, (std::vector<int>{-1, -1, -1, 1, -1, 2}));
}

TEST(CollectiveJoins, AStepThatJoinsEverythingLeavesNothingPending) {
  std::vector<int> joins = PlanCollectiveJoins({
      Step(Kind::kDeferredCollective, {{0, 10}}),
      Step(Kind::kJoinsAll, {{500, 600}}),
      Step(Kind::kKernel, {{0, 10}}),
      Step(Kind::kDeferredCollective, {{0, 10}}),  // ordinal 1
      Step(Kind::kKernel, {{0, 10}}),
  });
  // It waits for everything before it runs; the kernel after it waits for
  // nothing.
  EXPECT_EQ(joins, (std::vector<int>{-1, 0, -1, -1, 1}));
}

}  // namespace
}  // namespace veomni::runtime
