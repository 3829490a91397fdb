// Expert-parallel moe_experts and its gradient on rank threads against the
// one-rank CPU kernels run on each ep group's concatenated tokens with the
// full expert tensors: the host path, and the device path (the one GPUs
// take) run with the CPU device's kernels.

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/LocalCommunicator.h"
#include "runtime/device/Device.h"
#include "runtime/executor/ExpertParallel.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime {
namespace {

using Shape = std::vector<int64_t>;

constexpr int64_t kTokens = 5, kHidden = 4, kInter = 3, kSlots = 2, kExperts = 8;

struct RankData {
  std::vector<float> x, weights, y_grad;
  std::vector<int64_t> experts;
};

std::vector<float> Random(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(n);
  for (float& v : values) v = normal(rng);
  return values;
}

// How slots pick experts: at random; rank 0's all on expert 0; or every
// rank's on expert 0, so the other members receive no rows at all.
enum Skew { kUniform, kRankZeroOnOne, kAllOnOne };

RankData MakeRank(int rank, Skew skew) {
  std::mt19937 rng(100 + rank);
  RankData data;
  data.x = Random(rng, kTokens * kHidden, 1.0f);
  data.weights = Random(rng, kTokens * kSlots, 0.5f);
  data.y_grad = Random(rng, kTokens * kHidden, 1.0f);
  std::uniform_int_distribution<int64_t> pick(0, kExperts - 1);
  for (int64_t s = 0; s < kTokens * kSlots; ++s) {
    // skew: every slot of rank 0 goes to expert 0, so some members receive
    // nothing from it; a token may also pick one expert twice.
    const bool first = skew == kAllOnOne || (skew == kRankZeroOnOne && rank == 0);
    data.experts.push_back(first ? 0 : pick(rng));
  }
  return data;
}

absl::Status Kernel(const char* name, std::vector<TensorView> in, std::vector<TensorView> out) {
  return (*LookupCpuKernel(name))(KernelAttrs(), in, out);
}

struct Case {
  Mesh mesh;
  Skew skew;
  bool device_path = false;
};

class ExpertParallelMatchesOneRank : public testing::TestWithParam<Case> {};

TEST_P(ExpertParallelMatchesOneRank, ForwardAndGradients) {
  const Mesh mesh = GetParam().mesh;
  const int world = mesh.size();
  const int ep = mesh.ep;
  const int64_t local = kExperts / ep;
  std::mt19937 rng(7);
  std::vector<float> gate_up = Random(rng, kExperts * 2 * kInter * kHidden, 0.5f);
  std::vector<float> down = Random(rng, kExperts * kHidden * kInter, 0.5f);
  const int64_t gu_block = local * 2 * kInter * kHidden, dn_block = local * kHidden * kInter;

  std::vector<RankData> data;
  for (int r = 0; r < world; ++r) data.push_back(MakeRank(r, GetParam().skew));
  struct Result {
    absl::Status forward, backward;
    std::vector<float> y, x_grad, weights_grad, gate_up_grad, down_grad;
  };
  std::vector<Result> results(world);
  LocalWorld local_world(mesh, absl::Seconds(10));
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < world; ++r) comms.push_back(local_world.ForRank(r));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::vector<int> group = mesh.Group(r, kAxisEp);
      const int g = static_cast<int>(std::find(group.begin(), group.end(), r) - group.begin());
      std::vector<float> my_gu(gate_up.begin() + g * gu_block,
                               gate_up.begin() + (g + 1) * gu_block);
      std::vector<float> my_dn(down.begin() + g * dn_block, down.begin() + (g + 1) * dn_block);
      RankData& d = data[r];
      Result& out = results[r];
      out.y.assign(kTokens * kHidden, NAN);
      out.x_grad.assign(kTokens * kHidden, NAN);
      out.weights_grad.assign(kTokens * kSlots, NAN);
      out.gate_up_grad.assign(gu_block, NAN);
      out.down_grad.assign(dn_block, NAN);
      std::vector<TensorView> in = {{d.x.data(), DType::kF32, {kTokens, kHidden}},
                                    {d.experts.data(), DType::kI64, {kTokens, kSlots}},
                                    {d.weights.data(), DType::kF32, {kTokens, kSlots}},
                                    {my_gu.data(), DType::kF32, {local, 2 * kInter, kHidden}},
                                    {my_dn.data(), DType::kF32, {local, kHidden, kInter}}};
      std::vector<TensorView> y = {{out.y.data(), DType::kF32, {kTokens, kHidden}}};
      std::vector<TensorView> grads = {
          {out.x_grad.data(), DType::kF32, {kTokens, kHidden}},
          {out.weights_grad.data(), DType::kF32, {kTokens, kSlots}},
          {out.gate_up_grad.data(), DType::kF32, {local, 2 * kInter, kHidden}},
          {out.down_grad.data(), DType::kF32, {local, kHidden, kInter}}};
      if (GetParam().device_path) {
        std::unique_ptr<Device> cpu = CreateCpuDevice();
        out.forward = MoeExpertsExpertParallelOnDevice(*cpu, *comms[r], kAxisEp, in, y);
        in.push_back({d.y_grad.data(), DType::kF32, {kTokens, kHidden}});
        out.backward = MoeExpertsGradExpertParallelOnDevice(*cpu, *comms[r], kAxisEp, in, grads);
      } else {
        out.forward = MoeExpertsExpertParallel(*comms[r], kAxisEp, in, y);
        in.push_back({d.y_grad.data(), DType::kF32, {kTokens, kHidden}});
        out.backward = MoeExpertsGradExpertParallel(*comms[r], kAxisEp, in, grads);
      }
    });
  }
  for (std::thread& t : threads) t.join();

  auto near = [](const std::vector<float>& got, const float* want, int64_t n) {
    float worst = 0, scale = 1e-6f;
    for (int64_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::abs(got[i] - want[i]));
      scale = std::max(scale, std::abs(want[i]));
    }
    return worst / scale;
  };
  // One reference per ep group: its members' tokens concatenated in order.
  for (int r = 0; r < world; ++r) {
    ASSERT_TRUE(results[r].forward.ok()) << results[r].forward;
    ASSERT_TRUE(results[r].backward.ok()) << results[r].backward;
    std::vector<int> group = mesh.Group(r, kAxisEp);
    const int g = static_cast<int>(std::find(group.begin(), group.end(), r) - group.begin());
    const int64_t tokens = kTokens * ep;
    RankData all;
    for (int member : group) {
      const RankData& d = data[member];
      all.x.insert(all.x.end(), d.x.begin(), d.x.end());
      all.weights.insert(all.weights.end(), d.weights.begin(), d.weights.end());
      all.y_grad.insert(all.y_grad.end(), d.y_grad.begin(), d.y_grad.end());
      all.experts.insert(all.experts.end(), d.experts.begin(), d.experts.end());
    }
    std::vector<float> y(tokens * kHidden), dx(tokens * kHidden), dw(tokens * kSlots),
        dgu(gate_up.size()), ddn(down.size());
    std::vector<TensorView> in = {{all.x.data(), DType::kF32, {tokens, kHidden}},
                                  {all.experts.data(), DType::kI64, {tokens, kSlots}},
                                  {all.weights.data(), DType::kF32, {tokens, kSlots}},
                                  {gate_up.data(), DType::kF32, {kExperts, 2 * kInter, kHidden}},
                                  {down.data(), DType::kF32, {kExperts, kHidden, kInter}}};
    ASSERT_TRUE(Kernel("moe_experts", in, {{y.data(), DType::kF32, {tokens, kHidden}}}).ok());
    in.push_back({all.y_grad.data(), DType::kF32, {tokens, kHidden}});
    ASSERT_TRUE(Kernel("moe_experts_grad", in,
                       {{dx.data(), DType::kF32, {tokens, kHidden}},
                        {dw.data(), DType::kF32, {tokens, kSlots}},
                        {dgu.data(), DType::kF32, {kExperts, 2 * kInter, kHidden}},
                        {ddn.data(), DType::kF32, {kExperts, kHidden, kInter}}})
                    .ok());
    const Result& got = results[r];
    EXPECT_LT(near(got.y, y.data() + g * kTokens * kHidden, kTokens * kHidden), 1e-6) << r;
    EXPECT_LT(near(got.x_grad, dx.data() + g * kTokens * kHidden, kTokens * kHidden), 1e-6) << r;
    EXPECT_LT(near(got.weights_grad, dw.data() + g * kTokens * kSlots, kTokens * kSlots), 1e-6)
        << r;
    EXPECT_LT(near(got.gate_up_grad, dgu.data() + g * gu_block, gu_block), 1e-6) << r;
    EXPECT_LT(near(got.down_grad, ddn.data() + g * dn_block, dn_block), 1e-6) << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Meshes, ExpertParallelMatchesOneRank,
                         testing::Values(Case{{1, 2, 1, 2}, kUniform},
                                         Case{{1, 4, 1, 4}, kUniform},
                                         Case{{1, 4, 1, 4}, kRankZeroOnOne},
                                         Case{{1, 2, 2, 2}, kUniform},
                                         Case{{2, 2, 2, 4}, kRankZeroOnOne},
                                         Case{{1, 4, 1, 4}, kAllOnOne},
                                         Case{{1, 2, 1, 2}, kUniform, true},
                                         Case{{1, 4, 1, 4}, kRankZeroOnOne, true},
                                         Case{{2, 2, 2, 4}, kRankZeroOnOne, true},
                                         Case{{1, 4, 1, 4}, kAllOnOne, true}),
                         [](const testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "dp" + std::to_string(c.mesh.dp) + "_fsdp" +
                                  std::to_string(c.mesh.fsdp) + "_sp" +
                                  std::to_string(c.mesh.sp) + "_ep" +
                                  std::to_string(c.mesh.ep) +
                                  (c.skew == kRankZeroOnOne ? "_rank0_on_expert0"
                                   : c.skew == kAllOnOne    ? "_all_on_expert0"
                                                            : "") +
                                  (c.device_path ? "_device_path" : "_host_path");
                         });

TEST(ExpertParallel, AnExpertIdOutsideTheGroupIsInvalidArgument) {
  const Mesh mesh{1, 2, 1, 2};
  LocalWorld world(mesh, absl::Seconds(10));
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < 2; ++r) comms.push_back(world.ForRank(r));
  std::vector<absl::Status> statuses(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> x(4, 1.0f), w(2, 1.0f), gu(2 * 2 * 2, 0.1f), dn(2 * 2, 0.1f), y(4);
      std::vector<int64_t> experts = {0, r == 1 ? 2 : 1};  // 2 experts in all
      statuses[r] = MoeExpertsExpertParallel(
          *comms[r], kAxisEp,
          {{x.data(), DType::kF32, {2, 2}}, {experts.data(), DType::kI64, {2, 1}},
           {w.data(), DType::kF32, {2, 1}}, {gu.data(), DType::kF32, {1, 2, 2}},
           {dn.data(), DType::kF32, {1, 2, 1}}},
          {{y.data(), DType::kF32, {2, 2}}});
      // The failing rank must not leave the other waiting forever.
      if (!statuses[r].ok()) comms[r]->Abort(statuses[r]);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(statuses[1].message(), testing::HasSubstr("expert id 2 at slot 1 is outside [0, 2)"));
  EXPECT_FALSE(statuses[0].ok());  // aborted by rank 1
}

}  // namespace
}  // namespace veomni::runtime

namespace veomni::runtime {
namespace {

TEST(ExpertParallel, OperandsOfTheWrongDTypeFailBeforeAnyExchange) {
  const Mesh mesh{1, 2, 1, 2};
  LocalWorld world(mesh, absl::Seconds(10));
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < 2; ++r) comms.push_back(world.ForRank(r));
  std::vector<absl::Status> statuses(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> x(4, 1.0f), gu(2 * 2 * 2, 0.1f), dn(2 * 2, 0.1f), y(4);
      std::vector<uint16_t> weights(2, 0);  // bf16: the runtime's EP path reads f32
      std::vector<int64_t> experts = {0, 1};
      statuses[r] = MoeExpertsExpertParallel(
          *comms[r], kAxisEp,
          {{x.data(), DType::kF32, {2, 2}}, {experts.data(), DType::kI64, {2, 1}},
           {weights.data(), DType::kBF16, {2, 1}}, {gu.data(), DType::kF32, {1, 2, 2}},
           {dn.data(), DType::kF32, {1, 2, 1}}},
          {{y.data(), DType::kF32, {2, 2}}});
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kInvalidArgument) << r;
    EXPECT_THAT(statuses[r].message(), testing::HasSubstr("weights [2, 1] bf16")) << r;
  }
}

}  // namespace
}  // namespace veomni::runtime
