// The MoE kernels (top_k, moe_gate, moe_experts) against naive references
// written from their definitions, and their gradients (moe_gate_grad,
// moe_experts_grad) against central finite differences of the forwards (f32
// forward, differences taken in double) and naive closed forms.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RunKernel;

using testing::kGradAtol;
using testing::kGradRtol;
using testing::NumericalGradient;

struct OutputSpec {
  DType dtype;
  std::vector<int64_t> shape;
};

// Runs a forward kernel with outputs of the given dtypes and shapes and
// returns the values of output `which` (an f32 one).
std::function<std::vector<float>()> Forward(const std::string& name, const KernelAttrs& attrs,
                                            std::vector<const OwnedTensor*> inputs,
                                            std::vector<OutputSpec> specs, size_t which = 0) {
  return [=]() {
    std::vector<OwnedTensor> outputs;
    for (const OutputSpec& spec : specs) outputs.emplace_back(spec.dtype, spec.shape);
    std::vector<OwnedTensor*> output_pointers;
    for (OwnedTensor& output : outputs) output_pointers.push_back(&output);
    absl::Status status = RunKernel(name, attrs, inputs, output_pointers);
    EXPECT_TRUE(status.ok()) << status;
    return outputs[which].Values<float>();
  };
}

std::vector<int64_t> ToI64(const std::vector<int32_t>& values) {
  return std::vector<int64_t>(values.begin(), values.end());
}
std::vector<int32_t> ToI32(const std::vector<int64_t>& values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

// The indices of the k largest of `values` by repeated scans: each pick is
// the first (lowest-index) maximum of what is not taken yet.
template <typename T>
std::vector<int64_t> NaiveTopK(const std::vector<T>& values, int64_t k) {
  std::vector<bool> taken(values.size(), false);
  std::vector<int64_t> picked;
  for (int64_t n = 0; n < k; ++n) {
    int64_t best = -1;
    for (size_t i = 0; i < values.size(); ++i) {
      if (taken[i]) continue;
      if (best < 0 || values[i] > values[best]) best = static_cast<int64_t>(i);
    }
    taken[best] = true;
    picked.push_back(best);
  }
  return picked;
}

std::vector<double> NaiveSoftmax(const std::vector<double>& row) {
  double max = *std::max_element(row.begin(), row.end());
  double total = 0;
  for (double x : row) total += std::exp(x - max);
  std::vector<double> p;
  for (double x : row) p.push_back(std::exp(x - max) / total);
  return p;
}

std::vector<double> Row(const std::vector<float>& values, int64_t row, int64_t width) {
  return std::vector<double>(values.begin() + row * width, values.begin() + (row + 1) * width);
}

// ---------------------------------------------------------------- top_k

TEST(CpuMoe, TopKHandComputedWithTiesAndNan) {
  OwnedTensor x = F32({2, 5}, {1, 3, 3, -1, 3, 0, -2, 5, 0, 4});
  KernelAttrs attrs;
  attrs.SetInt("k", 3);
  OwnedTensor values(DType::kF32, {2, 3});
  OwnedTensor indices(DType::kI64, {2, 3});
  ASSERT_TRUE(RunKernel("top_k", attrs, {&x}, {&values, &indices}).ok());
  EXPECT_EQ(values.Values<float>(), (std::vector<float>{3, 3, 3, 5, 4, 0}));
  EXPECT_EQ(indices.Values<int64_t>(), (std::vector<int64_t>{1, 2, 4, 2, 4, 0}));

  attrs.SetInt("k", 5);  // a full sort
  OwnedTensor all_values(DType::kF32, {2, 5});
  OwnedTensor all_indices(DType::kI64, {2, 5});
  ASSERT_TRUE(RunKernel("top_k", attrs, {&x}, {&all_values, &all_indices}).ok());
  EXPECT_EQ(all_values.Values<float>(), (std::vector<float>{3, 3, 3, 1, -1, 5, 4, 0, 0, -2}));
  EXPECT_EQ(all_indices.Values<int64_t>(), (std::vector<int64_t>{1, 2, 4, 0, 3, 2, 4, 0, 3, 1}));

  // NaN ranks above every number, as in torch.topk.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  OwnedTensor with_nan = F32({4}, {1, nan, 2, nan});
  attrs.SetInt("k", 3);
  OwnedTensor nan_values(DType::kF32, {3});
  OwnedTensor nan_indices(DType::kI64, {3});
  ASSERT_TRUE(RunKernel("top_k", attrs, {&with_nan}, {&nan_values, &nan_indices}).ok());
  EXPECT_EQ(nan_indices.Values<int64_t>(), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_TRUE(std::isnan(nan_values.Values<float>()[0]));
  EXPECT_TRUE(std::isnan(nan_values.Values<float>()[1]));
  EXPECT_EQ(nan_values.Values<float>()[2], 2.0f);
}

TEST(CpuMoe, TopKMatchesNaiveSelection) {
  std::mt19937 rng(40);
  const int64_t n = 7;
  std::vector<int64_t> shape = {2, 3, n};
  // Small integers tie often; uniform floats almost never.
  std::uniform_int_distribution<int> small(-3, 3);
  std::vector<float> tied(42);
  for (float& value : tied) value = static_cast<float>(small(rng));
  for (const std::vector<float>& data : {tied, testing::RandomFloats(42, rng, -5, 5)}) {
    OwnedTensor x = F32(shape, data);
    for (int64_t k : {0, 1, 3, 7}) {
      SCOPED_TRACE(::testing::Message() << "k " << k);
      KernelAttrs attrs;
      attrs.SetInt("k", k);
      OwnedTensor values(DType::kF32, {2, 3, k});
      OwnedTensor indices(DType::kI64, {2, 3, k});
      ASSERT_TRUE(RunKernel("top_k", attrs, {&x}, {&values, &indices}).ok());
      std::vector<float> expected_values;
      std::vector<int64_t> expected_indices;
      for (int64_t row = 0; row < 6; ++row) {
        std::vector<float> row_values(data.begin() + row * n, data.begin() + (row + 1) * n);
        for (int64_t index : NaiveTopK(row_values, k)) {
          expected_indices.push_back(index);
          expected_values.push_back(row_values[index]);
        }
      }
      EXPECT_EQ(indices.Values<int64_t>(), expected_indices);
      EXPECT_EQ(values.Values<float>(), expected_values);
    }
  }
}

TEST(CpuMoe, TopKRejectsBadOperands) {
  OwnedTensor x(DType::kF32, {2, 4});
  OwnedTensor values(DType::kF32, {2, 2});
  OwnedTensor indices(DType::kI64, {2, 2});
  KernelAttrs attrs;
  absl::Status status = RunKernel("top_k", attrs, {&x}, {&values, &indices});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "top_k: attribute 'k' is not set");
  attrs.SetInt("k", 5);
  status = RunKernel("top_k", attrs, {&x}, {&values, &indices});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "top_k: k 5 is outside [0, 4] (the last dim of x [2, 4])");
  attrs.SetInt("k", -1);
  EXPECT_EQ(RunKernel("top_k", attrs, {&x}, {&values, &indices}).code(),
            absl::StatusCode::kInvalidArgument);
  attrs.SetInt("k", 2);
  OwnedTensor wide(DType::kF32, {2, 3});
  EXPECT_EQ(RunKernel("top_k", attrs, {&x}, {&wide, &indices}).message(),
            "top_k: values has shape [2, 3], expected [2, 2]");
  OwnedTensor indices32(DType::kI32, {2, 2});
  EXPECT_EQ(RunKernel("top_k", attrs, {&x}, {&values, &indices32}).message(),
            "top_k: indices has dtype i32, expected i64");
  OwnedTensor scalar(DType::kF32, {});
  EXPECT_EQ(RunKernel("top_k", attrs, {&scalar}, {&values, &indices}).message(),
            "top_k: x must have rank >= 1");
  OwnedTensor integers(DType::kI64, {2, 4});
  status = RunKernel("top_k", attrs, {&integers}, {&values, &indices});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(status.message(), "top_k: dtype i64 is not implemented on the CPU");
  EXPECT_EQ(RunKernel("top_k", attrs, {&x}, {&values}).message(),
            "top_k: expects 2 outputs, got 1");
}

// ------------------------------------------------------------- moe_gate

struct NaiveGate {
  std::vector<double> weights;
  std::vector<int64_t> experts;
};

// Per row: softmax, the top_k largest probabilities (first maximum first),
// divided by their sum when normalizing.
NaiveGate NaiveMoeGate(const std::vector<float>& logits, int64_t tokens, int64_t num_experts,
                       int64_t top_k, bool normalize) {
  NaiveGate gate;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> p = NaiveSoftmax(Row(logits, t, num_experts));
    std::vector<int64_t> chosen = NaiveTopK(p, top_k);
    double total = 0;
    for (int64_t e : chosen) total += p[e];
    for (int64_t e : chosen) {
      gate.weights.push_back(normalize ? p[e] / total : p[e]);
      gate.experts.push_back(e);
    }
  }
  return gate;
}

void ExpectMoeGateMatchesNaive(const OwnedTensor& logits, int64_t top_k, int normalize) {
  SCOPED_TRACE(::testing::Message() << "top_k " << top_k << " normalize " << normalize);
  int64_t tokens = logits.shape()[0];
  int64_t num_experts = logits.shape()[1];
  KernelAttrs attrs;
  attrs.SetInt("top_k", top_k);
  if (normalize >= 0) attrs.SetInt("normalize", normalize);  // -1: left unset, default 0
  OwnedTensor weights = F32({tokens, top_k}, std::vector<float>(tokens * top_k, 9.0f));
  OwnedTensor experts = I64({tokens, top_k}, std::vector<int64_t>(tokens * top_k, 99));
  absl::Status status = RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts});
  ASSERT_TRUE(status.ok()) << status;
  NaiveGate expected =
      NaiveMoeGate(logits.Values<float>(), tokens, num_experts, top_k, normalize == 1);
  EXPECT_EQ(experts.Values<int64_t>(), expected.experts);
  EXPECT_TRUE(testing::AllClose(weights.Values<float>(), expected.weights, 1e-7, 1e-6));
}

TEST(CpuMoe, MoeGateMatchesNaiveSoftmaxAndSelection) {
  std::mt19937 rng(41);
  OwnedTensor logits = testing::RandomF32({6, 8}, rng, -3, 3);
  for (int64_t top_k : {1, 2, 8}) {
    for (int normalize : {-1, 0, 1}) ExpectMoeGateMatchesNaive(logits, top_k, normalize);
  }
}

TEST(CpuMoe, MoeGateTiesPickTheLowerExpert) {
  OwnedTensor logits = F32({3, 6}, {0.5f, 2, 2, 0.5f, 2, -1,  //
                                    1, 1, 1, 1, 1, 1,         //
                                    3, -1, 3, -1, 3, 3});
  KernelAttrs attrs;
  attrs.SetInt("top_k", 4);
  attrs.SetInt("normalize", 1);
  OwnedTensor weights(DType::kF32, {3, 4});
  OwnedTensor experts(DType::kI64, {3, 4});
  ASSERT_TRUE(RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts}).ok());
  EXPECT_EQ(experts.Values<int64_t>(), (std::vector<int64_t>{1, 2, 4, 0, 0, 1, 2, 3, 0, 2, 4, 5}));
  std::vector<float> weight_values = weights.Values<float>();
  std::vector<float> all_equal(weight_values.begin() + 4, weight_values.begin() + 12);
  EXPECT_TRUE(testing::AllClose(all_equal, std::vector<double>(8, 0.25), 1e-7, 1e-6));
  for (int64_t top_k : {1, 2, 3, 5}) {
    for (int normalize : {0, 1}) ExpectMoeGateMatchesNaive(logits, top_k, normalize);
  }
}

TEST(CpuMoe, MoeGateIsStableForLargeLogits) {
  OwnedTensor logits = F32({1, 3}, {1000, 999, -1000});
  KernelAttrs attrs;
  attrs.SetInt("top_k", 2);
  OwnedTensor weights(DType::kF32, {1, 2});
  OwnedTensor experts(DType::kI64, {1, 2});
  ASSERT_TRUE(RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts}).ok());
  double e = std::exp(-1.0);
  EXPECT_TRUE(testing::AllClose(weights.Values<float>(),
                                std::vector<double>{1 / (1 + e), e / (1 + e)}, 1e-7, 1e-6));
  EXPECT_EQ(experts.Values<int64_t>(), (std::vector<int64_t>{0, 1}));
}

TEST(CpuMoe, MoeGateRejectsBadOperands) {
  OwnedTensor logits(DType::kF32, {4, 8});
  OwnedTensor weights(DType::kF32, {4, 2});
  OwnedTensor experts(DType::kI64, {4, 2});
  KernelAttrs attrs;
  absl::Status status = RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "moe_gate: attribute 'top_k' is not set");
  for (int64_t top_k : {0, 9}) {
    attrs.SetInt("top_k", top_k);
    status = RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), absl::StrCat("moe_gate: top_k ", top_k,
                                             " is outside [1, 8] (the number of experts)"));
  }
  attrs.SetInt("top_k", 2);
  attrs.SetInt("normalize", 2);
  EXPECT_EQ(RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts}).message(),
            "moe_gate: attribute 'normalize' is 2, expected 0 or 1");
  attrs.SetInt("normalize", 1);
  OwnedTensor flat(DType::kF32, {8});
  EXPECT_EQ(RunKernel("moe_gate", attrs, {&flat}, {&weights, &experts}).message(),
            "moe_gate: logits has rank 1 (shape [8]), expected 2");
  OwnedTensor experts32(DType::kI32, {4, 2});
  EXPECT_EQ(RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts32}).message(),
            "moe_gate: experts has dtype i32, expected i64");
  OwnedTensor wide(DType::kF32, {4, 3});
  EXPECT_EQ(RunKernel("moe_gate", attrs, {&logits}, {&wide, &experts}).message(),
            "moe_gate: weights has shape [4, 3], expected [4, 2]");
  OwnedTensor half(DType::kBF16, {4, 8});
  EXPECT_EQ(RunKernel("moe_gate", attrs, {&half}, {&weights, &experts}).code(),
            absl::StatusCode::kUnimplemented);
}

// -------------------------------------------------------- moe_gate_grad

// Logits whose values within a row are at least 0.2 apart, so a 1e-3
// perturbation never changes the selection or its order.
OwnedTensor SeparatedLogits(int64_t tokens, int64_t num_experts, std::mt19937& rng) {
  std::uniform_real_distribution<float> jitter(-0.05f, 0.05f);
  std::vector<float> values;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> row;
    for (int64_t e = 0; e < num_experts; ++e) row.push_back(0.3f * e - 1.0f + jitter(rng));
    std::shuffle(row.begin(), row.end(), rng);
    values.insert(values.end(), row.begin(), row.end());
  }
  return F32({tokens, num_experts}, values);
}

// The gradient as the brief writes it, for distinct selected experts:
// dw_j/dp_i = [i == e_j] / s - p[e_j] / s^2 for selected i (normalizing),
// [i == e_j] otherwise; then the softmax backward.
std::vector<double> NaiveGateGrad(const std::vector<float>& logits,
                                  const std::vector<int64_t>& experts,
                                  const std::vector<float>& weights_grad, int64_t tokens,
                                  int64_t num_experts, int64_t top_k, bool normalize) {
  std::vector<double> grad;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> p = NaiveSoftmax(Row(logits, t, num_experts));
    std::vector<int64_t> chosen(experts.begin() + t * top_k, experts.begin() + (t + 1) * top_k);
    double s = 0;
    for (int64_t e : chosen) s += p[e];
    std::vector<double> dp(num_experts, 0.0);
    for (int64_t i = 0; i < num_experts; ++i) {
      bool selected = std::find(chosen.begin(), chosen.end(), i) != chosen.end();
      for (int64_t j = 0; j < top_k; ++j) {
        double derivative;
        if (!normalize) {
          derivative = chosen[j] == i ? 1.0 : 0.0;
        } else {
          derivative = selected ? (chosen[j] == i ? 1.0 / s : 0.0) - p[chosen[j]] / (s * s) : 0.0;
        }
        dp[i] += weights_grad[t * top_k + j] * derivative;
      }
    }
    double expected = 0;
    for (int64_t i = 0; i < num_experts; ++i) expected += dp[i] * p[i];
    for (int64_t i = 0; i < num_experts; ++i) grad.push_back(p[i] * (dp[i] - expected));
  }
  return grad;
}

TEST(CpuMoe, MoeGateGradMatchesFiniteDifferencesOfMoeGate) {
  std::mt19937 rng(42);
  const int64_t tokens = 4, num_experts = 6;
  for (int64_t top_k : {1, 2, 3, 6}) {
    for (int normalize : {0, 1}) {
      SCOPED_TRACE(::testing::Message() << "top_k " << top_k << " normalize " << normalize);
      OwnedTensor logits = SeparatedLogits(tokens, num_experts, rng);
      KernelAttrs attrs;
      attrs.SetInt("top_k", top_k);
      attrs.SetInt("normalize", normalize);
      OwnedTensor weights(DType::kF32, {tokens, top_k});
      OwnedTensor experts(DType::kI64, {tokens, top_k});
      ASSERT_TRUE(RunKernel("moe_gate", attrs, {&logits}, {&weights, &experts}).ok());
      std::vector<float> dw_values = testing::RandomFloats(tokens * top_k, rng);
      OwnedTensor dw = F32({tokens, top_k}, dw_values);
      KernelAttrs grad_attrs;
      grad_attrs.SetInt("normalize", normalize);
      OwnedTensor dlogits = F32({tokens, num_experts}, std::vector<float>(24, 9.0f));
      absl::Status status =
          RunKernel("moe_gate_grad", grad_attrs, {&logits, &experts, &dw}, {&dlogits});
      ASSERT_TRUE(status.ok()) << status;

      auto forward = Forward("moe_gate", attrs, {&logits},
                             {{DType::kF32, {tokens, top_k}}, {DType::kI64, {tokens, top_k}}});
      EXPECT_TRUE(testing::AllClose(dlogits.Values<float>(),
                                    NumericalGradient(logits, forward, dw_values), kGradAtol,
                                    kGradRtol));
      EXPECT_TRUE(
          testing::AllClose(dlogits.Values<float>(),
                            NaiveGateGrad(logits.Values<float>(), experts.Values<int64_t>(),
                                          dw_values, tokens, num_experts, top_k, normalize == 1),
                            1e-7, 1e-5));

      // i32 expert ids give the same gradient.
      OwnedTensor experts32 = I32({tokens, top_k}, ToI32(experts.Values<int64_t>()));
      OwnedTensor dlogits32(DType::kF32, {tokens, num_experts});
      ASSERT_TRUE(
          RunKernel("moe_gate_grad", grad_attrs, {&logits, &experts32, &dw}, {&dlogits32}).ok());
      EXPECT_EQ(dlogits32.Values<float>(), dlogits.Values<float>());
    }
  }
}

// Weights for a fixed selection, every slot counted: w_j = p[e_j] / s with
// s = sum over slots of p[e_slot] (or w_j = p[e_j]), in double.
std::vector<double> NaiveFixedSelectionWeights(const std::vector<double>& logits,
                                               const std::vector<int64_t>& experts, int64_t tokens,
                                               int64_t num_experts, int64_t slots, bool normalize) {
  std::vector<double> weights;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> row(logits.begin() + t * num_experts,
                            logits.begin() + (t + 1) * num_experts);
    std::vector<double> p = NaiveSoftmax(row);
    double s = 0;
    for (int64_t j = 0; j < slots; ++j) s += p[experts[t * slots + j]];
    for (int64_t j = 0; j < slots; ++j) {
      double w = p[experts[t * slots + j]];
      weights.push_back(normalize ? w / s : w);
    }
  }
  return weights;
}

TEST(CpuMoe, MoeGateGradCountsEverySlotOfARepeatedExpert) {
  std::mt19937 rng(43);
  const int64_t tokens = 2, num_experts = 4, slots = 3;
  OwnedTensor logits = testing::RandomF32({tokens, num_experts}, rng, -2, 2);
  std::vector<int32_t> expert_values = {2, 2, 0, 1, 3, 1};
  OwnedTensor experts = I32({tokens, slots}, expert_values);
  std::vector<float> dw_values = testing::RandomFloats(tokens * slots, rng);
  OwnedTensor dw = F32({tokens, slots}, dw_values);
  for (int normalize : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "normalize " << normalize);
    KernelAttrs attrs;
    attrs.SetInt("normalize", normalize);
    OwnedTensor dlogits(DType::kF32, {tokens, num_experts});
    ASSERT_TRUE(RunKernel("moe_gate_grad", attrs, {&logits, &experts, &dw}, {&dlogits}).ok());
    // Central differences of the naive function, all in double.
    std::vector<float> logit_values = logits.Values<float>();
    std::vector<double> x(logit_values.begin(), logit_values.end());
    std::vector<double> expected;
    const double step = 1e-5;
    for (size_t i = 0; i < x.size(); ++i) {
      double original = x[i];
      double f[2];
      for (int side = 0; side < 2; ++side) {
        x[i] = original + (side == 0 ? step : -step);
        std::vector<double> w = NaiveFixedSelectionWeights(x, ToI64(expert_values), tokens,
                                                           num_experts, slots, normalize == 1);
        f[side] = 0;
        for (size_t j = 0; j < w.size(); ++j) f[side] += w[j] * dw_values[j];
      }
      x[i] = original;
      expected.push_back((f[0] - f[1]) / (2 * step));
    }
    EXPECT_TRUE(testing::AllClose(dlogits.Values<float>(), expected, 1e-6, 1e-5));
  }
}

TEST(CpuMoe, MoeGateGradRejectsBadOperands) {
  OwnedTensor logits(DType::kF32, {3, 4});
  OwnedTensor dw(DType::kF32, {3, 2});
  OwnedTensor dlogits(DType::kF32, {3, 4});
  OwnedTensor too_big = I64({3, 2}, {0, 1, 2, 4, 1, 0});
  absl::Status status = RunKernel("moe_gate_grad", {}, {&logits, &too_big, &dw}, {&dlogits});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "moe_gate_grad: expert id 4 at position 3 is outside [0, 4)");
  OwnedTensor negative = I32({3, 2}, {0, 1, -1, 2, 1, 0});
  status = RunKernel("moe_gate_grad", {}, {&logits, &negative, &dw}, {&dlogits});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "moe_gate_grad: expert id -1 at position 2 is outside [0, 4)");

  OwnedTensor experts = I64({3, 2}, {0, 1, 2, 3, 1, 0});
  OwnedTensor wide_dw(DType::kF32, {3, 3});
  EXPECT_EQ(RunKernel("moe_gate_grad", {}, {&logits, &experts, &wide_dw}, {&dlogits}).message(),
            "moe_gate_grad: weights_grad has shape [3, 3], expected [3, 2]");
  OwnedTensor short_experts = I64({2, 2}, {0, 1, 2, 3});
  EXPECT_EQ(RunKernel("moe_gate_grad", {}, {&logits, &short_experts, &dw}, {&dlogits}).message(),
            "moe_gate_grad: experts has shape [2, 2], expected [3, 2]");
  OwnedTensor float_experts(DType::kF32, {3, 2});
  EXPECT_EQ(RunKernel("moe_gate_grad", {}, {&logits, &float_experts, &dw}, {&dlogits}).message(),
            "moe_gate_grad: experts have dtype f32, expected i64 or i32");
  OwnedTensor wide_out(DType::kF32, {3, 5});
  EXPECT_EQ(RunKernel("moe_gate_grad", {}, {&logits, &experts, &dw}, {&wide_out}).message(),
            "moe_gate_grad: output has shape [3, 5], expected [3, 4]");
  KernelAttrs bad;
  bad.SetInt("normalize", 3);
  EXPECT_EQ(RunKernel("moe_gate_grad", bad, {&logits, &experts, &dw}, {&dlogits}).message(),
            "moe_gate_grad: attribute 'normalize' is 3, expected 0 or 1");
}

// ---------------------------------------------------------- moe_experts

struct ExpertsCase {
  int64_t tokens, slots, experts, hidden, inter;
};

// down[e] (silu(g) * u) with g_c = gate_up[e, c, :] . x_row and
// u_c = gate_up[e, I + c, :] . x_row, by plain index arithmetic. T is float
// for the kernel's operands, double for differencing in double.
template <typename T>
std::vector<double> NaiveExpertOutput(const ExpertsCase& c, const T* x_row, int64_t e,
                                      const std::vector<T>& gate_up, const std::vector<T>& down) {
  std::vector<double> g(c.inter, 0.0), u(c.inter, 0.0);
  for (int64_t i = 0; i < c.inter; ++i) {
    for (int64_t h = 0; h < c.hidden; ++h) {
      g[i] += double(gate_up[(e * 2 * c.inter + i) * c.hidden + h]) * x_row[h];
      u[i] += double(gate_up[(e * 2 * c.inter + c.inter + i) * c.hidden + h]) * x_row[h];
    }
  }
  std::vector<double> out(c.hidden, 0.0);
  for (int64_t h = 0; h < c.hidden; ++h) {
    for (int64_t i = 0; i < c.inter; ++i) {
      double silu = g[i] / (1.0 + std::exp(-g[i]));
      out[h] += double(down[(e * c.hidden + h) * c.inter + i]) * silu * u[i];
    }
  }
  return out;
}

template <typename T>
std::vector<double> NaiveMoeExperts(const ExpertsCase& c, const std::vector<T>& x,
                                    const std::vector<int64_t>& ids, const std::vector<T>& weights,
                                    const std::vector<T>& gate_up, const std::vector<T>& down) {
  std::vector<double> y(c.tokens * c.hidden, 0.0);
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t j = 0; j < c.slots; ++j) {
      std::vector<double> out =
          NaiveExpertOutput(c, x.data() + t * c.hidden, ids[t * c.slots + j], gate_up, down);
      for (int64_t h = 0; h < c.hidden; ++h) {
        y[t * c.hidden + h] += double(weights[t * c.slots + j]) * out[h];
      }
    }
  }
  return y;
}

// Operands of one experts case, random but for the ids.
struct ExpertsOperands {
  OwnedTensor x, weights, gate_up, down;
  ExpertsOperands(const ExpertsCase& c, std::mt19937& rng)
      : x(testing::RandomF32({c.tokens, c.hidden}, rng)),
        weights(testing::RandomF32({c.tokens, c.slots}, rng, 0.1f, 1.0f)),
        gate_up(testing::RandomF32({c.experts, 2 * c.inter, c.hidden}, rng)),
        down(testing::RandomF32({c.experts, c.hidden, c.inter}, rng)) {}
};

// Expert 2 is chosen by no token, expert 0 by several, and token 1 picks
// expert 3 in both slots.
constexpr ExpertsCase kExpertsCase = {5, 2, 4, 6, 3};
const std::vector<int64_t> kExpertIds = {0, 3, 3, 3, 1, 0, 0, 3, 1, 0};

// Three slots per token, eight experts, wider layers; expert 2 chosen by
// three slots, expert 3 by none.
constexpr ExpertsCase kWideCase = {3, 3, 8, 16, 5};
const std::vector<int64_t> kWideIds = {7, 0, 4, 2, 2, 2, 5, 1, 6};

TEST(CpuMoe, MoeExpertsMatchesNaiveLoops) {
  std::mt19937 rng(44);
  const ExpertsCase& c = kExpertsCase;
  ExpertsOperands ops(c, rng);
  std::vector<double> expected =
      NaiveMoeExperts(c, ops.x.Values<float>(), kExpertIds, ops.weights.Values<float>(),
                      ops.gate_up.Values<float>(), ops.down.Values<float>());
  OwnedTensor ids64 = I64({c.tokens, c.slots}, kExpertIds);
  OwnedTensor ids32 = I32({c.tokens, c.slots}, ToI32(kExpertIds));
  for (const OwnedTensor* ids : {&ids64, &ids32}) {
    SCOPED_TRACE(DTypeName(ids->dtype()));
    OwnedTensor y = F32({c.tokens, c.hidden}, std::vector<float>(30, 42.0f));
    absl::Status status =
        RunKernel("moe_experts", {}, {&ops.x, ids, &ops.weights, &ops.gate_up, &ops.down}, {&y});
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(testing::AllClose(y.Values<float>(), expected, 1e-6, 1e-5));
  }

  // The wide case.
  const ExpertsCase& wide = kWideCase;
  const std::vector<int64_t>& wide_ids = kWideIds;
  ExpertsOperands wide_ops(wide, rng);
  OwnedTensor wide_ids64 = I64({3, 3}, wide_ids);
  OwnedTensor wide_y(DType::kF32, {3, 16});
  ASSERT_TRUE(
      RunKernel("moe_experts", {},
                {&wide_ops.x, &wide_ids64, &wide_ops.weights, &wide_ops.gate_up, &wide_ops.down},
                {&wide_y})
          .ok());
  EXPECT_TRUE(testing::AllClose(
      wide_y.Values<float>(),
      NaiveMoeExperts(wide, wide_ops.x.Values<float>(), wide_ids, wide_ops.weights.Values<float>(),
                      wide_ops.gate_up.Values<float>(), wide_ops.down.Values<float>()),
      1e-6, 1e-5));
}

// bf16 expert weights (vo-bf16-matmuls rounded them) are their widened
// values: both kernels equal the f32 ones on the widened weights, bit for
// bit; mixed weight types are refused.
TEST(CpuMoe, MoeExpertsTakeBf16WeightsAsTheirValues) {
  std::mt19937 rng(45);
  const ExpertsCase& wide = kWideCase;
  const std::vector<int64_t>& wide_ids = kWideIds;
  ExpertsOperands ops(wide, rng);
  OwnedTensor ids = I64({3, 3}, wide_ids);
  OwnedTensor gate_up16 = testing::RoundedToBf16(ops.gate_up);
  OwnedTensor down16 = testing::RoundedToBf16(ops.down);
  OwnedTensor gate_up32 = F32(ops.gate_up.shape(), testing::WidenedBf16(gate_up16));
  OwnedTensor down32 = F32(ops.down.shape(), testing::WidenedBf16(down16));
  OwnedTensor dy = testing::RandomF32({3, 16}, rng);
  std::vector<std::vector<float>> results[2];
  for (int rounded = 0; rounded < 2; ++rounded) {
    const OwnedTensor* gate_up = rounded ? &gate_up16 : &gate_up32;
    const OwnedTensor* down = rounded ? &down16 : &down32;
    OwnedTensor y(DType::kF32, {3, 16}), dx(DType::kF32, {3, 16}), dw(DType::kF32, {3, 3});
    OwnedTensor dgu(DType::kF32, ops.gate_up.shape()), dd(DType::kF32, ops.down.shape());
    ASSERT_TRUE(RunKernel("moe_experts", {}, {&ops.x, &ids, &ops.weights, gate_up, down}, {&y})
                    .ok());
    absl::Status status = RunKernel("moe_experts_grad", {},
                                    {&ops.x, &ids, &ops.weights, gate_up, down, &dy},
                                    {&dx, &dw, &dgu, &dd});
    ASSERT_TRUE(status.ok()) << status;
    for (const OwnedTensor* t : {&y, &dx, &dw, &dgu, &dd}) results[rounded].push_back(t->Values<float>());
  }
  EXPECT_EQ(results[1], results[0]);
  OwnedTensor y(DType::kF32, {3, 16});
  EXPECT_EQ(
      RunKernel("moe_experts", {}, {&ops.x, &ids, &ops.weights, &gate_up16, &down32}, {&y})
          .message(),
      "moe_experts: down has dtype f32, expected bf16");
}

// keep_projected: the routed rows' [g; u] = gate_up[e] x_t, by expert and
// then by slot position; the gradient given them checks them and computes
// as without (in double, from x).
TEST(CpuMoe, MoeExpertsKeepsTheRoutedProjectionsInExpertOrder) {
  std::mt19937 rng(46);
  const ExpertsCase& wide = kWideCase;
  const std::vector<int64_t>& ids_values = kWideIds;
  ExpertsOperands ops(wide, rng);
  OwnedTensor ids = I64({3, 3}, ids_values);
  OwnedTensor y(DType::kF32, {3, 16}), projected(DType::kF32, {9, 10});
  ASSERT_TRUE(RunKernel("moe_experts", {}, {&ops.x, &ids, &ops.weights, &ops.gate_up, &ops.down},
                        {&y, &projected})
                  .ok());
  // Expert order, ties by slot position: slots 1 (e0), 7 (e1), 3, 4, 5 (e2),
  // 2 (e4), 6 (e5), 8 (e6), 0 (e7).
  const std::vector<int64_t> order = {1, 7, 3, 4, 5, 2, 6, 8, 0};
  std::vector<double> expected;
  const std::vector<float> x = ops.x.Values<float>(), gu = ops.gate_up.Values<float>();
  for (int64_t slot : order) {
    for (int64_t c = 0; c < 10; ++c) {
      double sum = 0;
      for (int64_t i = 0; i < 16; ++i) {
        sum += double(gu[(ids_values[slot] * 10 + c) * 16 + i]) * x[slot / 3 * 16 + i];
      }
      expected.push_back(sum);
    }
  }
  EXPECT_TRUE(testing::AllClose(projected.Values<float>(), expected, 1e-6, 1e-5));
  OwnedTensor dy = testing::RandomF32({3, 16}, rng);
  std::vector<std::vector<float>> results[2];
  for (bool given : {false, true}) {
    OwnedTensor dx(DType::kF32, {3, 16}), dw(DType::kF32, {3, 3});
    OwnedTensor dgu(DType::kF32, ops.gate_up.shape()), dd(DType::kF32, ops.down.shape());
    std::vector<const OwnedTensor*> inputs = {&ops.x, &ids, &ops.weights, &ops.gate_up, &ops.down,
                                              &dy};
    if (given) inputs.push_back(&projected);
    ASSERT_TRUE(RunKernel("moe_experts_grad", {}, inputs, {&dx, &dw, &dgu, &dd}).ok());
    for (const OwnedTensor* t : {&dx, &dw, &dgu, &dd}) results[given].push_back(t->Values<float>());
  }
  EXPECT_EQ(results[1], results[0]);
  OwnedTensor narrow(DType::kF32, {9, 5});
  EXPECT_EQ(RunKernel("moe_experts", {}, {&ops.x, &ids, &ops.weights, &ops.gate_up, &ops.down},
                      {&y, &narrow})
                .message(),
            "moe_experts: projected has shape [9, 5], expected [9, 10]");
}

TEST(CpuMoe, MoeExpertsRepeatedExpertAddsBothSlots) {
  // Choosing expert e in two slots with weights a and b equals choosing it
  // once with weight a + b.
  std::mt19937 rng(45);
  ExpertsCase two = {2, 2, 3, 4, 2};
  ExpertsOperands ops(two, rng);
  OwnedTensor ids = I64({2, 2}, {1, 1, 2, 2});
  OwnedTensor y(DType::kF32, {2, 4});
  ASSERT_TRUE(
      RunKernel("moe_experts", {}, {&ops.x, &ids, &ops.weights, &ops.gate_up, &ops.down}, {&y})
          .ok());
  std::vector<float> w = ops.weights.Values<float>();
  OwnedTensor single_ids = I64({2, 1}, {1, 2});
  OwnedTensor summed = F32({2, 1}, {w[0] + w[1], w[2] + w[3]});
  OwnedTensor single_y(DType::kF32, {2, 4});
  ASSERT_TRUE(RunKernel("moe_experts", {}, {&ops.x, &single_ids, &summed, &ops.gate_up, &ops.down},
                        {&single_y})
                  .ok());
  std::vector<float> single = single_y.Values<float>();
  EXPECT_TRUE(testing::AllClose(y.Values<float>(),
                                std::vector<double>(single.begin(), single.end()), 1e-6, 1e-5));
}

TEST(CpuMoe, MoeExpertsRejectsBadOperands) {
  OwnedTensor x(DType::kF32, {3, 6});
  OwnedTensor ids = I64({3, 2}, {0, 1, 2, 3, 1, 0});
  OwnedTensor weights(DType::kF32, {3, 2});
  OwnedTensor gate_up(DType::kF32, {4, 6, 6});
  OwnedTensor down(DType::kF32, {4, 6, 3});
  OwnedTensor y(DType::kF32, {3, 6});
  auto run = [&](const OwnedTensor& x_, const OwnedTensor& ids_, const OwnedTensor& weights_,
                 const OwnedTensor& gate_up_, const OwnedTensor& down_, OwnedTensor& y_) {
    return RunKernel("moe_experts", {}, {&x_, &ids_, &weights_, &gate_up_, &down_}, {&y_});
  };
  ASSERT_TRUE(run(x, ids, weights, gate_up, down, y).ok());

  OwnedTensor too_big = I64({3, 2}, {0, 1, 2, 4, 1, 0});
  absl::Status status = run(x, too_big, weights, gate_up, down, y);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "moe_experts: expert id 4 at position 3 is outside [0, 4)");
  OwnedTensor negative = I32({3, 2}, {0, 1, 2, 3, -2, 0});
  status = run(x, negative, weights, gate_up, down, y);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "moe_experts: expert id -2 at position 4 is outside [0, 4)");

  OwnedTensor odd(DType::kF32, {4, 5, 6});
  EXPECT_EQ(run(x, ids, weights, odd, down, y).message(),
            "moe_experts: gate_up [4, 5, 6] needs an even dim 1 (2I: the gate rows, then the up "
            "rows)");
  OwnedTensor narrow(DType::kF32, {4, 6, 5});
  EXPECT_EQ(run(x, ids, weights, narrow, down, y).message(),
            "moe_experts: gate_up has shape [4, 6, 5], expected [4, 6, 6]");
  OwnedTensor short_down(DType::kF32, {4, 6, 2});
  EXPECT_EQ(run(x, ids, weights, gate_up, short_down, y).message(),
            "moe_experts: down has shape [4, 6, 2], expected [4, 6, 3]");
  OwnedTensor fewer_experts(DType::kF32, {3, 6, 3});
  EXPECT_EQ(run(x, ids, weights, gate_up, fewer_experts, y).message(),
            "moe_experts: down has shape [3, 6, 3], expected [4, 6, 3]");
  OwnedTensor one_weight(DType::kF32, {3, 1});
  EXPECT_EQ(run(x, ids, one_weight, gate_up, down, y).message(),
            "moe_experts: weights has shape [3, 1], expected [3, 2]");
  OwnedTensor short_ids = I64({2, 2}, {0, 1, 2, 3});
  EXPECT_EQ(run(x, short_ids, weights, gate_up, down, y).message(),
            "moe_experts: experts has shape [2, 2], expected [3, 2]");
  OwnedTensor float_ids(DType::kF32, {3, 2});
  EXPECT_EQ(run(x, float_ids, weights, gate_up, down, y).message(),
            "moe_experts: experts have dtype f32, expected i64 or i32");
  OwnedTensor x3(DType::kF32, {1, 3, 6});
  EXPECT_EQ(run(x3, ids, weights, gate_up, down, y).message(),
            "moe_experts: x has rank 3 (shape [1, 3, 6]), expected 2");
  OwnedTensor wide_y(DType::kF32, {3, 5});
  EXPECT_EQ(run(x, ids, weights, gate_up, down, wide_y).message(),
            "moe_experts: output has shape [3, 5], expected [3, 6]");
  EXPECT_EQ(RunKernel("moe_experts", {}, {&x, &ids, &weights, &gate_up}, {&y}).message(),
            "moe_experts: expects 5 inputs, got 4");
}

// ----------------------------------------------------- moe_experts_grad

TEST(CpuMoe, MoeExpertsGradMatchesFiniteDifferences) {
  std::mt19937 rng(46);
  const ExpertsCase& c = kExpertsCase;
  ExpertsOperands ops(c, rng);
  std::vector<float> dy_values = testing::RandomFloats(c.tokens * c.hidden, rng);
  OwnedTensor dy = F32({c.tokens, c.hidden}, dy_values);
  OwnedTensor ids64 = I64({c.tokens, c.slots}, kExpertIds);
  OwnedTensor ids32 = I32({c.tokens, c.slots}, ToI32(kExpertIds));
  for (const OwnedTensor* ids : {&ids64, &ids32}) {
    SCOPED_TRACE(DTypeName(ids->dtype()));
    // Every output starts as garbage: the kernel must overwrite all of it.
    auto garbage = [](std::vector<int64_t> shape) {
      return F32(shape, std::vector<float>(testing::NumElementsOf(shape), 42.0f));
    };
    OwnedTensor dx = garbage(ops.x.shape());
    OwnedTensor dweights = garbage(ops.weights.shape());
    OwnedTensor dgate_up = garbage(ops.gate_up.shape());
    OwnedTensor ddown = garbage(ops.down.shape());
    absl::Status status =
        RunKernel("moe_experts_grad", {}, {&ops.x, ids, &ops.weights, &ops.gate_up, &ops.down, &dy},
                  {&dx, &dweights, &dgate_up, &ddown});
    ASSERT_TRUE(status.ok()) << status;

    auto forward = Forward("moe_experts", {}, {&ops.x, ids, &ops.weights, &ops.gate_up, &ops.down},
                           {{DType::kF32, {c.tokens, c.hidden}}});
    EXPECT_TRUE(testing::AllClose(dx.Values<float>(), NumericalGradient(ops.x, forward, dy_values),
                                  kGradAtol, kGradRtol));
    EXPECT_TRUE(testing::AllClose(dweights.Values<float>(),
                                  NumericalGradient(ops.weights, forward, dy_values), kGradAtol,
                                  kGradRtol));
    EXPECT_TRUE(testing::AllClose(dgate_up.Values<float>(),
                                  NumericalGradient(ops.gate_up, forward, dy_values), kGradAtol,
                                  kGradRtol));
    EXPECT_TRUE(testing::AllClose(ddown.Values<float>(),
                                  NumericalGradient(ops.down, forward, dy_values), kGradAtol,
                                  kGradRtol));

    // weights_grad[t, j] = dy_t . (expert e's output for x_t), exactly.
    std::vector<double> dweights_naive;
    for (int64_t t = 0; t < c.tokens; ++t) {
      for (int64_t j = 0; j < c.slots; ++j) {
        std::vector<double> out =
            NaiveExpertOutput(c, ops.x.Data<float>() + t * c.hidden, kExpertIds[t * c.slots + j],
                              ops.gate_up.Values<float>(), ops.down.Values<float>());
        double dot = 0;
        for (int64_t h = 0; h < c.hidden; ++h) dot += out[h] * dy_values[t * c.hidden + h];
        dweights_naive.push_back(dot);
      }
    }
    EXPECT_TRUE(testing::AllClose(dweights.Values<float>(), dweights_naive, 1e-6, 1e-5));

    // Central differences of the naive forward, all in double: tight enough
    // to catch a small relative error the f32 differences would let through.
    std::vector<std::vector<double>> operands;
    for (const OwnedTensor* operand : {&ops.x, &ops.weights, &ops.gate_up, &ops.down}) {
      std::vector<float> values = operand->Values<float>();
      operands.emplace_back(values.begin(), values.end());
    }
    const OwnedTensor* grads[] = {&dx, &dweights, &dgate_up, &ddown};
    const char* names[] = {"x_grad", "weights_grad", "gate_up_grad", "down_grad"};
    for (size_t which = 0; which < 4; ++which) {
      std::vector<double> expected;
      const double step = 1e-5;
      for (double& value : operands[which]) {
        double original = value;
        double f[2];
        for (int side = 0; side < 2; ++side) {
          value = original + (side == 0 ? step : -step);
          std::vector<double> y =
              NaiveMoeExperts(c, operands[0], kExpertIds, operands[1], operands[2], operands[3]);
          f[side] = 0;
          for (size_t i = 0; i < y.size(); ++i) f[side] += y[i] * dy_values[i];
        }
        value = original;
        expected.push_back((f[0] - f[1]) / (2 * step));
      }
      EXPECT_TRUE(testing::AllClose(grads[which]->Values<float>(), expected, 1e-6, 1e-5))
          << names[which];
    }

    // Expert 2 is chosen by no token: its gradients are exactly zero.
    std::vector<float> gate_up_grad = dgate_up.Values<float>();
    std::vector<float> down_grad = ddown.Values<float>();
    int64_t gate_up_size = 2 * c.inter * c.hidden, down_size = c.hidden * c.inter;
    EXPECT_EQ(std::vector<float>(gate_up_grad.begin() + 2 * gate_up_size,
                                 gate_up_grad.begin() + 3 * gate_up_size),
              std::vector<float>(gate_up_size, 0.0f));
    EXPECT_EQ(
        std::vector<float>(down_grad.begin() + 2 * down_size, down_grad.begin() + 3 * down_size),
        std::vector<float>(down_size, 0.0f));
  }
}

TEST(CpuMoe, MoeExpertsGradRejectsBadOperands) {
  OwnedTensor x(DType::kF32, {3, 6});
  OwnedTensor ids = I64({3, 2}, {0, 1, 2, 3, 1, 0});
  OwnedTensor weights(DType::kF32, {3, 2});
  OwnedTensor gate_up(DType::kF32, {4, 6, 6});
  OwnedTensor down(DType::kF32, {4, 6, 3});
  OwnedTensor dy(DType::kF32, {3, 6});
  OwnedTensor dx(DType::kF32, {3, 6}), dweights(DType::kF32, {3, 2}),
      dgate_up(DType::kF32, {4, 6, 6}), ddown(DType::kF32, {4, 6, 3});
  ASSERT_TRUE(RunKernel("moe_experts_grad", {}, {&x, &ids, &weights, &gate_up, &down, &dy},
                        {&dx, &dweights, &dgate_up, &ddown})
                  .ok());
  OwnedTensor narrow_dy(DType::kF32, {3, 5});
  EXPECT_EQ(RunKernel("moe_experts_grad", {}, {&x, &ids, &weights, &gate_up, &down, &narrow_dy},
                      {&dx, &dweights, &dgate_up, &ddown})
                .message(),
            "moe_experts_grad: y_grad has shape [3, 5], expected [3, 6]");
  OwnedTensor narrow_dgate_up(DType::kF32, {4, 6, 5});
  EXPECT_EQ(RunKernel("moe_experts_grad", {}, {&x, &ids, &weights, &gate_up, &down, &dy},
                      {&dx, &dweights, &narrow_dgate_up, &ddown})
                .message(),
            "moe_experts_grad: gate_up_grad has shape [4, 6, 5], expected [4, 6, 6]");
  OwnedTensor int_dweights(DType::kI64, {3, 2});
  EXPECT_EQ(RunKernel("moe_experts_grad", {}, {&x, &ids, &weights, &gate_up, &down, &dy},
                      {&dx, &int_dweights, &dgate_up, &ddown})
                .message(),
            "moe_experts_grad: weights_grad has dtype i64, expected f32");
  EXPECT_EQ(RunKernel("moe_experts_grad", {}, {&x, &ids, &weights, &gate_up, &down, &dy},
                      {&dx, &dweights, &dgate_up})
                .message(),
            "moe_experts_grad: expects 4 outputs, got 3");
  OwnedTensor bad_ids = I32({3, 2}, {7, 1, 2, 3, 1, 0});
  absl::Status status =
      RunKernel("moe_experts_grad", {}, {&x, &bad_ids, &weights, &gate_up, &down, &dy},
                {&dx, &dweights, &dgate_up, &ddown});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "moe_experts_grad: expert id 7 at position 0 is outside [0, 4)");
}

TEST(CpuMoe, EveryMoeKernelIsRegistered) {
  std::vector<std::string> names = CpuKernelNames();
  for (const char* name :
       {"top_k", "moe_gate", "moe_gate_grad", "moe_experts", "moe_experts_grad"}) {
    const KernelFn* kernel = LookupCpuKernel(name);
    ASSERT_NE(kernel, nullptr) << name;
    EXPECT_NE(*kernel, nullptr) << name;
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

}  // namespace
}  // namespace veomni::runtime
