// The CUDA MoE kernels (top_k, moe_gate, moe_gate_grad, moe_experts,
// moe_experts_grad) against their CPU twins on the same random operands:
// selections exactly, values within tolerances argued at each compare, and
// an out-of-range expert id reported as a data error.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::AllClose;
using testing::F32;
using testing::GpuTest;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RandomF32;
using testing::RunCudaKernel;
using testing::RunTwins;
using testing::TwinResult;

// Values that tie often (small integers), with signed zeros and a few NaN:
// the cases where the ranking's tie-breaking shows.
std::vector<float> TieHeavyValues(int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(-3, 3);
  std::uniform_int_distribution<int> special(0, 19);
  std::vector<float> values;
  for (int64_t i = 0; i < count; ++i) {
    int kind = special(rng);
    if (kind == 0) {
      values.push_back(std::numeric_limits<float>::quiet_NaN());
    } else if (kind == 1) {
      values.push_back(-0.0f);
    } else {
      values.push_back(static_cast<float>(pick(rng)));
    }
  }
  return values;
}

// Ranking, NaN and the selection are exact on both sides: the values and
// indices must be equal, NaN matching NaN.
void ExpectTopKMatches(const OwnedTensor& x, int64_t k) {
  SCOPED_TRACE(::testing::Message() << "x " << FormatShape(x.shape()) << " k " << k);
  std::vector<int64_t> out_shape = x.shape();
  out_shape.back() = k;
  KernelAttrs attrs;
  attrs.SetInt("k", k);
  OwnedTensor values(DType::kF32, out_shape);
  OwnedTensor indices(DType::kI64, out_shape);
  TwinResult result = RunTwins("top_k", attrs, {&x}, {&values, &indices});
  EXPECT_TRUE(AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(), 0, 0));
  EXPECT_EQ(result.gpu[1].Values<int64_t>(), result.cpu[1].Values<int64_t>());
}

TEST_F(GpuTest, TopKMatchesCpu) {
  std::mt19937 rng(7);
  for (std::vector<int64_t> shape : {std::vector<int64_t>{1, 1}, std::vector<int64_t>{37, 16},
                                     std::vector<int64_t>{3, 5, 64}, std::vector<int64_t>{9}}) {
    int64_t count = shape.back();
    OwnedTensor random = RandomF32(shape, rng);
    OwnedTensor ties = F32(shape, TieHeavyValues(testing::NumElementsOf(shape), rng));
    for (int64_t k : {int64_t{0}, int64_t{1}, std::min<int64_t>(3, count), count}) {
      ExpectTopKMatches(random, k);
      ExpectTopKMatches(ties, k);
    }
  }
  // Rows longer than a block: every thread scans several values.
  OwnedTensor long_rows = F32({4, 1000}, TieHeavyValues(4000, rng));
  ExpectTopKMatches(long_rows, 7);
}

// Both sides compute the softmax in double and round the weight once; they
// differ only in the order of the exp sum (a few double ulps), far below one
// float ulp (rtol 1e-6 allows ~8). Equal logits give bit-equal probabilities
// on either side, so the selection is exact.
TEST_F(GpuTest, MoeGateMatchesCpu) {
  std::mt19937 rng(11);
  for (int64_t tokens : {1, 5, 37}) {
    for (int64_t num_experts : {4, 8}) {
      OwnedTensor random = RandomF32({tokens, num_experts}, rng, -3, 3);
      OwnedTensor ties = F32({tokens, num_experts}, TieHeavyValues(tokens * num_experts, rng));
      for (const OwnedTensor* logits : {&random, &ties}) {
        for (int64_t top_k : {1, 2, 3}) {
          for (int normalize : {-1, 0, 1}) {  // -1: the attribute absent
            SCOPED_TRACE(::testing::Message() << "T " << tokens << " E " << num_experts
                                              << " top_k " << top_k << " normalize "
                                              << normalize);
            KernelAttrs attrs;
            attrs.SetInt("top_k", top_k);
            if (normalize >= 0) attrs.SetInt("normalize", normalize);
            OwnedTensor weights(DType::kF32, {tokens, top_k});
            OwnedTensor experts(DType::kI64, {tokens, top_k});
            TwinResult result = RunTwins("moe_gate", attrs, {logits}, {&weights, &experts});
            EXPECT_TRUE(
                AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(), 1e-7, 1e-6));
            EXPECT_EQ(result.gpu[1].Values<int64_t>(), result.cpu[1].Values<int64_t>());
          }
        }
      }
    }
  }
}

// `slots` distinct experts per token out of [0, num_experts), or, when
// `repeat`, the first slot's expert again in the last slot.
std::vector<int64_t> RandomSelection(int64_t tokens, int64_t num_experts, int64_t slots,
                                     bool repeat, std::mt19937& rng) {
  std::vector<int64_t> ids;
  std::vector<int64_t> all(num_experts);
  for (int64_t e = 0; e < num_experts; ++e) all[e] = e;
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + slots);
    if (repeat && slots > 1) ids.back() = ids[ids.size() - slots];
  }
  return ids;
}

OwnedTensor ExpertIds(DType dtype, std::vector<int64_t> shape, const std::vector<int64_t>& ids) {
  if (dtype == DType::kI64) return I64(std::move(shape), ids);
  return I32(std::move(shape), std::vector<int32_t>(ids.begin(), ids.end()));
}

// Both sides work in double and round once; only summation orders differ (a
// few double ulps), so the float results agree to about one float ulp.
TEST_F(GpuTest, MoeGateGradMatchesCpu) {
  std::mt19937 rng(13);
  for (int64_t tokens : {1, 6, 37}) {
    for (int64_t num_experts : {4, 8}) {
      for (int64_t slots : {1, 2, 3}) {
        for (bool repeat : {false, true}) {
          for (DType id_dtype : {DType::kI64, DType::kI32}) {
            for (int normalize : {-1, 0, 1}) {
              SCOPED_TRACE(::testing::Message()
                           << "T " << tokens << " E " << num_experts << " k " << slots
                           << " repeat " << repeat << " ids " << DTypeName(id_dtype)
                           << " normalize " << normalize);
              OwnedTensor logits = RandomF32({tokens, num_experts}, rng, -3, 3);
              OwnedTensor experts =
                  ExpertIds(id_dtype, {tokens, slots},
                            RandomSelection(tokens, num_experts, slots, repeat, rng));
              OwnedTensor dw = RandomF32({tokens, slots}, rng);
              KernelAttrs attrs;
              if (normalize >= 0) attrs.SetInt("normalize", normalize);
              // Garbage first: the kernels overwrite their output.
              OwnedTensor dlogits =
                  F32({tokens, num_experts}, std::vector<float>(tokens * num_experts, 9.0f));
              TwinResult result =
                  RunTwins("moe_gate_grad", attrs, {&logits, &experts, &dw}, {&dlogits});
              EXPECT_TRUE(AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(),
                                   1e-7, 1e-6));
            }
          }
        }
      }
    }
  }
}

void ExpectIndexOutOfRange(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("an expert index outside [0, experts)"),
            absl::string_view::npos)
      << status;
}

TEST_F(GpuTest, MoeGateGradFlagsAnOutOfRangeExpert) {
  std::mt19937 rng(17);
  OwnedTensor logits = RandomF32({3, 4}, rng);
  OwnedTensor dw = RandomF32({3, 2}, rng);
  for (int64_t bad : {int64_t{4}, int64_t{-1}}) {
    OwnedTensor experts = I64({3, 2}, {0, 1, 2, bad, 3, 0});
    OwnedTensor dlogits(DType::kF32, {3, 4});
    ExpectIndexOutOfRange(RunCudaKernel("moe_gate_grad", {}, {&logits, &experts, &dw}, {&dlogits}));
  }
}

// ----------------------------------------------------------- moe_experts

struct ExpertsCase {
  int64_t tokens;
  int64_t hidden;
  int64_t experts;
  int64_t slots;
  int64_t intermediate;
  bool skewed;  // most slots on one expert, repeated within tokens: several row tiles
};

// Every case leaves expert 1 without a token.
constexpr ExpertsCase kExpertsCases[] = {
    {1, 16, 4, 1, 8, false},   {5, 24, 4, 2, 20, false},   {19, 32, 5, 2, 33, false},
    {37, 64, 8, 3, 48, false}, {37, 40, 6, 3, 16, true},  {100, 16, 4, 3, 8, false},
};

std::vector<int64_t> ExpertsRouting(const ExpertsCase& c, std::mt19937& rng) {
  std::vector<int64_t> chosen;  // every expert but 1
  for (int64_t e = 0; e < c.experts; ++e) {
    if (e != 1) chosen.push_back(e);
  }
  std::uniform_int_distribution<size_t> any(0, chosen.size() - 1);
  std::uniform_int_distribution<int> coin(0, 3);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < c.tokens * c.slots; ++i) {
    ids.push_back(c.skewed && coin(rng) != 0 ? chosen.back() : chosen[any(rng)]);
  }
  return ids;
}

// Operands of O(1) scale: weights drawn as U(-1, 1) * sqrt(3 / fan_in) keep
// the projections' variance near that of x.
struct ExpertsOperands {
  OwnedTensor x, experts, weights, gate_up, down, y_grad;

  ExpertsOperands(const ExpertsCase& c, DType id_dtype, std::mt19937& rng)
      : x(RandomF32({c.tokens, c.hidden}, rng)),
        experts(ExpertIds(id_dtype, {c.tokens, c.slots}, ExpertsRouting(c, rng))),
        weights(RandomF32({c.tokens, c.slots}, rng, 0, 1)),
        gate_up(Scaled({c.experts, 2 * c.intermediate, c.hidden}, c.hidden, rng)),
        down(Scaled({c.experts, c.hidden, c.intermediate}, c.intermediate, rng)),
        y_grad(RandomF32({c.tokens, c.hidden}, rng)) {}

  static OwnedTensor Scaled(std::vector<int64_t> shape, int64_t fan_in, std::mt19937& rng) {
    float bound = std::sqrt(3.0f / static_cast<float>(fan_in));
    return RandomF32(std::move(shape), rng, -bound, bound);
  }
};

// The CPU sums in double, the GPU in float over at most 2I = 96 (or H = 64,
// or an expert's <= 111 rows) terms of O(1) values per stage: a float error
// of at most ~K * 6e-8 relative to the terms' magnitude, i.e. <= ~1e-5 here
// through the three stages. 1e-4 absolute and relative keeps a margin while
// any wrong or missing term (O(0.1) or more) still fails.
constexpr double kExpertsAtol = 1e-4;
constexpr double kExpertsRtol = 1e-4;

TEST_F(GpuTest, MoeExpertsMatchesCpu) {
  testing::ScopedPrecision f32(cuda::MatmulPrecision::kF32);
  std::mt19937 rng(19);
  for (const ExpertsCase& c : kExpertsCases) {
    for (DType id_dtype : {DType::kI64, DType::kI32}) {
      SCOPED_TRACE(::testing::Message()
                   << "T " << c.tokens << " H " << c.hidden << " E " << c.experts << " k "
                   << c.slots << " I " << c.intermediate << " skewed " << c.skewed << " ids "
                   << DTypeName(id_dtype));
      ExpertsOperands in(c, id_dtype, rng);
      OwnedTensor y = F32({c.tokens, c.hidden}, std::vector<float>(c.tokens * c.hidden, 9.0f));
      TwinResult result = RunTwins("moe_experts", {},
                                   {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down}, {&y});
      EXPECT_TRUE(AllClose(result.gpu[0].Values<float>(), result.cpu[0].Values<float>(),
                           kExpertsAtol, kExpertsRtol));
    }
  }
}

TEST_F(GpuTest, MoeExpertsGradMatchesCpu) {
  testing::ScopedPrecision f32(cuda::MatmulPrecision::kF32);
  std::mt19937 rng(23);
  std::vector<ExpertsCase> cases(std::begin(kExpertsCases), std::end(kExpertsCases));
  cases.push_back({0, 16, 4, 2, 8, false});  // no tokens: zero weight gradients
  for (const ExpertsCase& c : cases) {
    for (DType id_dtype : {DType::kI64, DType::kI32}) {
      SCOPED_TRACE(::testing::Message()
                   << "T " << c.tokens << " H " << c.hidden << " E " << c.experts << " k "
                   << c.slots << " I " << c.intermediate << " skewed " << c.skewed << " ids "
                   << DTypeName(id_dtype));
      ExpertsOperands in(c, id_dtype, rng);
      std::vector<const OwnedTensor*> inputs = {&in.x,       &in.experts, &in.weights,
                                                &in.gate_up, &in.down,    &in.y_grad};
      // Garbage first: every output is overwritten.
      auto garbage = [](const OwnedTensor& like) {
        return F32(like.shape(), std::vector<float>(like.NumElements(), 9.0f));
      };
      OwnedTensor x_grad = garbage(in.x);
      OwnedTensor weights_grad = garbage(in.weights);
      OwnedTensor gate_up_grad = garbage(in.gate_up);
      OwnedTensor down_grad = garbage(in.down);
      TwinResult result = RunTwins("moe_experts_grad", {}, inputs,
                                   {&x_grad, &weights_grad, &gate_up_grad, &down_grad});
      const char* names[] = {"x_grad", "weights_grad", "gate_up_grad", "down_grad"};
      for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(AllClose(result.gpu[i].Values<float>(), result.cpu[i].Values<float>(),
                             kExpertsAtol, kExpertsRtol))
            << names[i];
      }
      // Deterministic: a second run gives the same bits.
      std::vector<OwnedTensor> again = result.gpu;
      std::vector<OwnedTensor*> again_pointers;
      for (OwnedTensor& output : again) again_pointers.push_back(&output);
      ASSERT_TRUE(RunCudaKernel("moe_experts_grad", {}, inputs, again_pointers).ok());
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(again[i].Values<float>(), result.gpu[i].Values<float>()) << names[i];
      }
    }
  }
}

// At bf16 precision every GEMM operand rounds to bf16 (relative error <=
// 2^-9 each) and products accumulate in fp32: each stage's K-term sum is off
// by ~2^-8 of its terms' scale, randomly signed. Against the tensor's largest
// value (so that sums which cancel do not count as large relative errors),
// three stages stay near 1e-2; 3e-2 keeps a margin, while a wrongly laid out
// fragment or tile (errors of the values' own size) fails. The fp32 tests
// above check the routing and sums exactly; this checks the tensor-core math
// on the same code, and the larger case covers several row, column and depth
// tiles of it.
constexpr double kBf16ExpertsTolerance = 3e-2;

// max |got - want| / max |want|.
double ScaledError(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0.0, scale = 1e-30;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return got.size() == want.size() ? worst / scale : INFINITY;
}

TEST_F(GpuTest, MoeExpertsAndGradInBf16MatchCpu) {
  testing::ScopedPrecision bf16(cuda::MatmulPrecision::kBF16);
  std::mt19937 rng(31);
  std::vector<ExpertsCase> cases(std::begin(kExpertsCases), std::end(kExpertsCases));
  cases.push_back({300, 128, 8, 2, 96, true});
  // Several 128-row tiles of one expert, 3 column tiles of the 2I = 272
  // projection, a 200 = 3 x 64 + 8 deep tail, and outer GEMMs several
  // 64-row steps deep.
  cases.push_back({520, 200, 6, 2, 136, true});
  cases.push_back({20, 18, 4, 2, 12, false});  // H not a multiple of 4: scalar loads
  cases.push_back({0, 16, 4, 2, 8, false});  // no tokens: zero weight gradients
  for (const ExpertsCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "T " << c.tokens << " H " << c.hidden << " E "
                                      << c.experts << " k " << c.slots << " I "
                                      << c.intermediate << " skewed " << c.skewed);
    ExpertsOperands in(c, DType::kI64, rng);
    auto garbage = [](const OwnedTensor& like) {
      return F32(like.shape(), std::vector<float>(like.NumElements(), 9.0f));
    };
    OwnedTensor y = garbage(in.x);
    TwinResult forward = RunTwins("moe_experts", {},
                                  {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down}, {&y});
    EXPECT_LE(ScaledError(forward.gpu[0].Values<float>(), forward.cpu[0].Values<float>()),
              kBf16ExpertsTolerance)
        << "y";
    OwnedTensor x_grad = garbage(in.x);
    OwnedTensor weights_grad = garbage(in.weights);
    OwnedTensor gate_up_grad = garbage(in.gate_up);
    OwnedTensor down_grad = garbage(in.down);
    TwinResult backward =
        RunTwins("moe_experts_grad", {},
                 {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down, &in.y_grad},
                 {&x_grad, &weights_grad, &gate_up_grad, &down_grad});
    const char* names[] = {"x_grad", "weights_grad", "gate_up_grad", "down_grad"};
    for (int i = 0; i < 4; ++i) {
      EXPECT_LE(ScaledError(backward.gpu[i].Values<float>(), backward.cpu[i].Values<float>()),
                kBf16ExpertsTolerance)
          << names[i];
    }
  }
}

// Expert weights the compiler rounded (vo-bf16-matmuls) are read in place:
// the products equal, bit for bit, the kernel's own rounding of the f32
// weights at bf16 precision, and the weight gradients stay f32.
TEST_F(GpuTest, MoeExpertsWithBf16WeightsEqualTheKernelsOwnRounding) {
  std::mt19937 rng(37);
  for (const ExpertsCase& c : {ExpertsCase{37, 64, 8, 3, 48, false},
                               ExpertsCase{520, 200, 6, 2, 136, true}}) {
    SCOPED_TRACE(::testing::Message() << "T " << c.tokens << " H " << c.hidden);
    ExpertsOperands in(c, DType::kI64, rng);
    OwnedTensor gate_up16 = testing::RoundedToBf16(in.gate_up);
    OwnedTensor down16 = testing::RoundedToBf16(in.down);
    auto fresh = [](const OwnedTensor& like) { return OwnedTensor(DType::kF32, like.shape()); };
    std::vector<OwnedTensor> by_kernel, by_compiler;
    for (bool rounded : {false, true}) {
      // f32 weights rounded by the kernel at bf16 precision; bf16 weights at
      // the default (f32) precision, which they override.
      testing::ScopedPrecision precision(rounded ? cuda::MatmulPrecision::kF32
                                                 : cuda::MatmulPrecision::kBF16);
      const OwnedTensor* gate_up = rounded ? &gate_up16 : &in.gate_up;
      const OwnedTensor* down = rounded ? &down16 : &in.down;
      std::vector<OwnedTensor>& out = rounded ? by_compiler : by_kernel;
      out = {fresh(in.x), fresh(in.x), fresh(in.weights), fresh(in.gate_up), fresh(in.down)};
      ASSERT_TRUE(RunCudaKernel("moe_experts", {},
                                {&in.x, &in.experts, &in.weights, gate_up, down}, {&out[0]})
                      .ok());
      ASSERT_TRUE(RunCudaKernel("moe_experts_grad", {},
                                {&in.x, &in.experts, &in.weights, gate_up, down, &in.y_grad},
                                {&out[1], &out[2], &out[3], &out[4]})
                      .ok());
    }
    const char* names[] = {"y", "x_grad", "weights_grad", "gate_up_grad", "down_grad"};
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(by_compiler[i].Values<float>(), by_kernel[i].Values<float>()) << names[i];
    }
    // The CPU widens bf16 weights and computes in double.
    OwnedTensor y = fresh(in.x);
    TwinResult twins = RunTwins("moe_experts", {},
                                {&in.x, &in.experts, &in.weights, &gate_up16, &down16}, {&y});
    EXPECT_LE(ScaledError(twins.gpu[0].Values<float>(), twins.cpu[0].Values<float>()),
              kBf16ExpertsTolerance);
  }
  // Rows of bf16 weights must be 16-byte chunks.
  ExpertsOperands odd(ExpertsCase{5, 24, 4, 2, 20, false}, DType::kI64, rng);
  OwnedTensor gate_up16 = testing::RoundedToBf16(odd.gate_up);
  OwnedTensor down16 = testing::RoundedToBf16(odd.down);
  OwnedTensor y(DType::kF32, odd.x.shape());
  EXPECT_EQ(RunCudaKernel("moe_experts", {},
                          {&odd.x, &odd.experts, &odd.weights, &gate_up16, &down16}, {&y})
                .message(),
            "moe_experts: bf16 expert weights need hidden and intermediate sizes divisible by "
            "8, got 24 and 20");
}

// keep_projected: the forward's routed projections match the CPU's (same
// order), and the gradient given them equals, bit for bit, the gradient
// that recomputes them.
TEST_F(GpuTest, MoeExpertsKeptProjectionsReplaceTheRecompute) {
  std::mt19937 rng(43);
  for (bool bf16 : {false, true}) {
    testing::ScopedPrecision precision(bf16 ? cuda::MatmulPrecision::kBF16
                                            : cuda::MatmulPrecision::kF32);
    for (const ExpertsCase& c : {ExpertsCase{37, 64, 8, 3, 48, false},
                                 ExpertsCase{520, 200, 6, 2, 136, true}}) {
      SCOPED_TRACE(::testing::Message() << "bf16 " << bf16 << " T " << c.tokens);
      ExpertsOperands in(c, DType::kI64, rng);
      OwnedTensor y(DType::kF32, in.x.shape());
      OwnedTensor projected(DType::kF32, {c.tokens * c.slots, 2 * c.intermediate});
      TwinResult forward = RunTwins("moe_experts", {},
                                    {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down},
                                    {&y, &projected});
      EXPECT_LE(ScaledError(forward.gpu[1].Values<float>(), forward.cpu[1].Values<float>()),
                bf16 ? kBf16ExpertsTolerance : 1e-5)
          << "projected";
      std::vector<std::vector<float>> grads[2];
      for (bool given : {false, true}) {
        std::vector<OwnedTensor> out = {OwnedTensor(DType::kF32, in.x.shape()),
                                        OwnedTensor(DType::kF32, in.weights.shape()),
                                        OwnedTensor(DType::kF32, in.gate_up.shape()),
                                        OwnedTensor(DType::kF32, in.down.shape())};
        std::vector<const OwnedTensor*> inputs = {&in.x,       &in.experts, &in.weights,
                                                  &in.gate_up, &in.down,    &in.y_grad};
        if (given) inputs.push_back(&forward.gpu[1]);
        ASSERT_TRUE(
            RunCudaKernel("moe_experts_grad", {}, inputs, {&out[0], &out[1], &out[2], &out[3]})
                .ok());
        for (const OwnedTensor& t : out) grads[given].push_back(t.Values<float>());
      }
      EXPECT_EQ(grads[1], grads[0]);
      // The kernel reads what it is given: doubled projections change the
      // input gradient.
      OwnedTensor doubled = F32(forward.gpu[1].shape(), forward.gpu[1].Values<float>());
      for (int64_t i = 0; i < doubled.NumElements(); ++i) doubled.Data<float>()[i] *= 2.0f;
      OwnedTensor dx(DType::kF32, in.x.shape()), dw(DType::kF32, in.weights.shape());
      OwnedTensor dgu(DType::kF32, in.gate_up.shape()), dd(DType::kF32, in.down.shape());
      ASSERT_TRUE(RunCudaKernel("moe_experts_grad", {},
                                {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down,
                                 &in.y_grad, &doubled},
                                {&dx, &dw, &dgu, &dd})
                      .ok());
      EXPECT_NE(dx.Values<float>(), grads[0][0]);
    }
  }
}

TEST_F(GpuTest, MoeExpertsFlagOutOfRangeExperts) {
  std::mt19937 rng(29);
  const ExpertsCase c = {3, 16, 4, 2, 8, false};
  for (int64_t bad : {int64_t{4}, int64_t{-2}}) {
    for (DType id_dtype : {DType::kI64, DType::kI32}) {
      SCOPED_TRACE(::testing::Message() << "bad id " << bad << " ids " << DTypeName(id_dtype));
      ExpertsOperands in(c, id_dtype, rng);
      OwnedTensor experts = ExpertIds(id_dtype, {3, 2}, {0, 2, bad, 3, 3, 0});
      OwnedTensor y(DType::kF32, {3, 16});
      ExpectIndexOutOfRange(RunCudaKernel(
          "moe_experts", {}, {&in.x, &experts, &in.weights, &in.gate_up, &in.down}, {&y}));
      OwnedTensor x_grad(DType::kF32, {3, 16});
      OwnedTensor weights_grad(DType::kF32, {3, 2});
      OwnedTensor gate_up_grad(DType::kF32, {4, 16, 16});
      OwnedTensor down_grad(DType::kF32, {4, 16, 8});
      ExpectIndexOutOfRange(
          RunCudaKernel("moe_experts_grad", {},
                        {&in.x, &experts, &in.weights, &in.gate_up, &in.down, &in.y_grad},
                        {&x_grad, &weights_grad, &gate_up_grad, &down_grad}));
      // The error is reported once; the next launch runs clean.
      EXPECT_TRUE(RunCudaKernel("moe_experts", {},
                                {&in.x, &in.experts, &in.weights, &in.gate_up, &in.down}, {&y})
                      .ok());
    }
  }
}

TEST_F(GpuTest, MoeKernelsRejectBadOperandsAsOnTheCpu) {
  OwnedTensor logits(DType::kF32, {4, 8});
  OwnedTensor weights(DType::kF32, {4, 2});
  OwnedTensor experts(DType::kI64, {4, 2});
  KernelAttrs attrs;
  attrs.SetInt("top_k", 9);
  absl::Status status = RunCudaKernel("moe_gate", attrs, {&logits}, {&weights, &experts});
  EXPECT_EQ(status.message(), "moe_gate: top_k 9 is outside [1, 8] (the number of experts)");
  OwnedTensor x(DType::kF32, {3, 6});
  OwnedTensor ids(DType::kI64, {3, 2});
  OwnedTensor gates(DType::kF32, {3, 2});
  OwnedTensor gate_up(DType::kF32, {4, 5, 6});
  OwnedTensor down(DType::kF32, {4, 6, 3});
  OwnedTensor y(DType::kF32, {3, 6});
  status = RunCudaKernel("moe_experts", {}, {&x, &ids, &gates, &gate_up, &down}, {&y});
  EXPECT_EQ(status.message(),
            "moe_experts: gate_up [4, 5, 6] needs an even dim 1 (2I: the gate rows, then the up "
            "rows)");
}

}  // namespace
}  // namespace veomni::runtime
