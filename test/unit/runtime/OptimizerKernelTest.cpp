// adamw against a scalar loop of torch.optim.AdamW's formula over three steps,
// against values torch 2.11 produced, and run in place.

#include <cmath>
#include <cstdlib>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::OwnedTensor;
using testing::RunKernel;

struct AdamWConfig {
  double lr, beta1, beta2, eps, weight_decay;
};

KernelAttrs AdamWAttrs(const AdamWConfig& config) {
  KernelAttrs attrs;
  attrs.SetFloat("beta1", config.beta1);
  attrs.SetFloat("beta2", config.beta2);
  attrs.SetFloat("eps", config.eps);
  attrs.SetFloat("weight_decay", config.weight_decay);
  return attrs;
}

// {lr, bias_correction1, bias_correction2} for 1-based `step`, as the
// compiler's step-counter arithmetic would produce them.
OwnedTensor Hyper(const AdamWConfig& config, int step) {
  return F32({3}, {static_cast<float>(config.lr),
                   static_cast<float>(1.0 - std::pow(config.beta1, step)),
                   static_cast<float>(1.0 - std::pow(config.beta2, step))});
}

const std::vector<float> kParams = {0.5f, -1.25f, 2.0f, 0.001f, -0.3f, 1.0f, 3.5f, -2.75f};
const std::vector<std::vector<float>> kGrads = {
    {0.1f, -0.2f, 0.05f, 1.5f, -0.7f, 0.0f, 0.3f, -0.01f},
    {-0.3f, 0.25f, 0.05f, -1.0f, 0.2f, 0.4f, -0.6f, 0.02f},
    {0.2f, 0.1f, -0.15f, 0.5f, 0.9f, -0.4f, 0.01f, 0.03f}};
constexpr float kGradScale = 0.5f;

struct AdamWState {
  OwnedTensor param, exp_avg, exp_avg_sq;
};

// Three steps of the adamw kernel, writing its outputs over its inputs.
AdamWState RunThreeStepsInPlace(const AdamWConfig& config) {
  int64_t n = static_cast<int64_t>(kParams.size());
  AdamWState state{F32({n}, kParams), OwnedTensor(DType::kF32, {n}),
                   OwnedTensor(DType::kF32, {n})};
  OwnedTensor grad_scale = F32({}, {kGradScale});
  for (int step = 1; step <= 3; ++step) {
    OwnedTensor grad = F32({n}, kGrads[step - 1]);
    OwnedTensor hyper = Hyper(config, step);
    absl::Status status =
        RunKernel("adamw", AdamWAttrs(config),
                  {&state.param, &grad, &state.exp_avg, &state.exp_avg_sq, &hyper, &grad_scale},
                  {&state.param, &state.exp_avg, &state.exp_avg_sq});
    EXPECT_TRUE(status.ok()) << status;
  }
  return state;
}

// Distance in representable floats (0 for equal values).
int64_t UlpDistance(float a, float b) {
  auto ordered = [](float x) {
    int32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    return bits < 0 ? int64_t{INT32_MIN} - bits : int64_t{bits};
  };
  return std::llabs(ordered(a) - ordered(b));
}

// Within `ulps` representable floats, or within `slack` absolutely.
::testing::AssertionResult WithinUlps(const std::vector<float>& actual,
                                      const std::vector<float>& expected, int64_t ulps,
                                      double slack = 0.0) {
  for (size_t i = 0; i < actual.size(); ++i) {
    double difference = std::fabs(double(actual[i]) - double(expected[i]));
    if (UlpDistance(actual[i], expected[i]) > ulps && difference > slack) {
      return ::testing::AssertionFailure()
             << "[" << i << "] " << actual[i] << " vs " << expected[i] << " ("
             << UlpDistance(actual[i], expected[i]) << " ulps)";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(CpuOptimizer, AdamWMatchesTorchFormulaOverThreeSteps) {
  for (const AdamWConfig& config :
       {AdamWConfig{1e-3, 0.9, 0.95, 1e-8, 0.1}, AdamWConfig{1e-2, 0.3, 0.999, 1e-6, 0.0}}) {
    AdamWState state = RunThreeStepsInPlace(config);
    // The formula as torch's documentation writes it, in double.
    std::vector<double> expected_param, expected_m, expected_v;
    for (size_t i = 0; i < kParams.size(); ++i) {
      double p = kParams[i], m = 0, v = 0;
      for (int step = 1; step <= 3; ++step) {
        double g = double(kGrads[step - 1][i]) * kGradScale;
        double bc1 = 1 - std::pow(config.beta1, step);
        double bc2 = 1 - std::pow(config.beta2, step);
        p *= 1 - config.lr * config.weight_decay;
        m = config.beta1 * m + (1 - config.beta1) * g;
        v = config.beta2 * v + (1 - config.beta2) * g * g;
        double denom = std::sqrt(v) / std::sqrt(bc2) + config.eps;
        p -= config.lr / bc1 * m / denom;
      }
      expected_param.push_back(p);
      expected_m.push_back(m);
      expected_v.push_back(v);
    }
    EXPECT_TRUE(testing::AllClose(state.param.Values<float>(), expected_param, 1e-7, 1e-6));
    EXPECT_TRUE(testing::AllClose(state.exp_avg.Values<float>(), expected_m, 1e-9, 1e-5));
    EXPECT_TRUE(testing::AllClose(state.exp_avg_sq.Values<float>(), expected_v, 1e-12, 1e-5));
  }
}

TEST(CpuOptimizer, AdamWMatchesTorchWithinOneUlp) {
  // torch.optim.AdamW(foreach=False) 2.11 on CPU, grads pre-multiplied by 0.5.
  // The moments agree to the ulp. The kernel reads lr as f32 (hyper), torch
  // as a double, which moves each update by up to ~5e-8 of itself: that is
  // the slack for params near zero, where an ulp is tiny.
  const double kLrRoundingSlack = 1e-9;
  AdamWState first = RunThreeStepsInPlace({1e-3, 0.9, 0.95, 1e-8, 0.1});
  EXPECT_TRUE(WithinUlps(first.param.Values<float>(),
                         {0.499320775f, -1.24910009f, 1.99764419f, -0.000427900581f,
                          -0.298747212f, 0.999009728f, 3.49858832f, -2.74921036f},
                         1, kLrRoundingSlack));
  EXPECT_TRUE(WithinUlps(first.exp_avg.Values<float>(),
                         {0.000550000346f, 0.00815000013f, -0.00322499988f, 0.0407500044f,
                          0.0256500002f, -0.0019999987f, -0.0143499998f, 0.00199500006f},
                         1));
  EXPECT_TRUE(WithinUlps(first.exp_avg_sq.Values<float>(),
                         {0.00168156263f, 0.00131843763f, 0.00033914065f, 0.0403828137f,
                          0.0161278117f, 0.00390000013f, 0.00529156253f, 1.71281245e-05f},
                         1));
  // beta1 = 0.3 makes torch's lerp take its large-weight branch.
  AdamWState second = RunThreeStepsInPlace({1e-2, 0.3, 0.999, 1e-6, 0.0});
  EXPECT_TRUE(WithinUlps(second.param.Values<float>(),
                         {0.495323956f, -1.25228906f, 1.98980296f, -0.00791271031f,
                          -0.299505144f, 0.995290458f, 3.50092554f, -2.75995517f},
                         1, kLrRoundingSlack));
  EXPECT_TRUE(WithinUlps(second.exp_avg.Values<float>(),
                         {0.041650001f, 0.0549500026f, -0.045675002f, 0.117249995f,
                          0.313949972f, -0.0979999974f, -0.0500500016f, 0.0122849997f},
                         1));
  EXPECT_TRUE(WithinUlps(second.exp_avg_sq.Values<float>(),
                         {3.49725051e-05f, 2.80893873e-05f, 6.87312604e-06f, 0.00087362557f,
                          0.000334745127f, 7.9960002e-05f, 0.000112390029f, 3.4985004e-07f},
                         1));
}

TEST(CpuOptimizer, AdamWInPlaceEqualsOutOfPlace) {
  AdamWConfig config{1e-3, 0.9, 0.95, 1e-8, 0.1};
  std::mt19937 rng(30);
  OwnedTensor param = testing::RandomF32({4, 5}, rng);
  OwnedTensor grad = testing::RandomF32({4, 5}, rng);
  OwnedTensor m = testing::RandomF32({4, 5}, rng, -0.1f, 0.1f);
  OwnedTensor v = testing::RandomF32({4, 5}, rng, 0.0f, 0.01f);
  OwnedTensor hyper = Hyper(config, 7);
  OwnedTensor grad_scale = F32({1}, {0.25f});
  OwnedTensor new_param(DType::kF32, {4, 5}), new_m(DType::kF32, {4, 5}),
      new_v(DType::kF32, {4, 5});
  ASSERT_TRUE(RunKernel("adamw", AdamWAttrs(config), {&param, &grad, &m, &v, &hyper, &grad_scale},
                        {&new_param, &new_m, &new_v})
                  .ok());
  ASSERT_TRUE(RunKernel("adamw", AdamWAttrs(config), {&param, &grad, &m, &v, &hyper, &grad_scale},
                        {&param, &m, &v})
                  .ok());
  EXPECT_EQ(param.Values<float>(), new_param.Values<float>());
  EXPECT_EQ(m.Values<float>(), new_m.Values<float>());
  EXPECT_EQ(v.Values<float>(), new_v.Values<float>());
}

TEST(CpuOptimizer, AdamWRejectsBadOperands) {
  AdamWConfig config{1e-3, 0.9, 0.95, 1e-8, 0.1};
  OwnedTensor param(DType::kF32, {3}), grad(DType::kF32, {3}), m(DType::kF32, {3}),
      v(DType::kF32, {3});
  OwnedTensor hyper = Hyper(config, 1);
  OwnedTensor grad_scale = F32({}, {1.0f});
  OwnedTensor short_grad(DType::kF32, {2});
  EXPECT_EQ(RunKernel("adamw", AdamWAttrs(config),
                      {&param, &short_grad, &m, &v, &hyper, &grad_scale}, {&param, &m, &v})
                .message(),
            "adamw: grad has shape [2], expected [3]");
  OwnedTensor short_hyper(DType::kF32, {2});
  EXPECT_EQ(RunKernel("adamw", AdamWAttrs(config),
                      {&param, &grad, &m, &v, &short_hyper, &grad_scale}, {&param, &m, &v})
                .message(),
            "adamw: hyper has shape [2], expected [3]");
  KernelAttrs no_decay;
  no_decay.SetFloat("beta1", 0.9);
  no_decay.SetFloat("beta2", 0.95);
  no_decay.SetFloat("eps", 1e-8);
  EXPECT_EQ(RunKernel("adamw", no_decay, {&param, &grad, &m, &v, &hyper, &grad_scale},
                      {&param, &m, &v})
                .message(),
            "adamw: attribute 'weight_decay' is not set");
  OwnedTensor half_param(DType::kBF16, {3});
  EXPECT_EQ(RunKernel("adamw", AdamWAttrs(config),
                      {&half_param, &grad, &m, &v, &hyper, &grad_scale}, {&param, &m, &v})
                .code(),
            absl::StatusCode::kUnimplemented);
}

// The first step of the tests below: its operands, and the kernel run on
// them with the given outputs.
struct FirstStep {
  AdamWConfig config{1e-3, 0.9, 0.95, 1e-8, 0.1};
  int64_t n = static_cast<int64_t>(kParams.size());
  OwnedTensor param = F32({n}, kParams), grad = F32({n}, kGrads[0]);
  OwnedTensor m{DType::kF32, {n}}, v{DType::kF32, {n}};
  OwnedTensor hyper = Hyper(config, 1), grad_scale = F32({}, {kGradScale});

  absl::Status Run(const std::vector<OwnedTensor*>& outputs) {
    return RunKernel("adamw", AdamWAttrs(config), {&param, &grad, &m, &v, &hyper, &grad_scale},
                     outputs);
  }
};

// A fourth output takes the sum of grad^2 (unscaled), summed in double by a
// plain loop here; the update itself is the three-output kernel's, bit for
// bit.
TEST(AdamWKernel, AFourthOutputTakesTheGradientsSumOfSquares) {
  FirstStep step;
  const int64_t n = step.n;
  std::vector<OwnedTensor> three(3, OwnedTensor(DType::kF32, {n}));
  std::vector<OwnedTensor> four(3, OwnedTensor(DType::kF32, {n}));
  OwnedTensor sum(DType::kF32, {});
  ASSERT_TRUE(step.Run({&three[0], &three[1], &three[2]}).ok());
  absl::Status status = step.Run({&four[0], &four[1], &four[2], &sum});
  ASSERT_TRUE(status.ok()) << status;
  double expected = 0.0;
  for (float g : kGrads[0]) expected += static_cast<double>(g) * g;
  EXPECT_EQ(sum.Values<float>()[0], static_cast<float>(expected));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(four[i].Values<float>(), three[i].Values<float>());
  // The sum is a scalar f32.
  OwnedTensor wide(DType::kF32, {1});
  EXPECT_EQ(step.Run({&four[0], &four[1], &four[2], &wide}).code(),
            absl::StatusCode::kInvalidArgument);
}

// A last bf16 output takes the updated parameter rounded to nearest even
// (vo-keep-bf16-params), with or without the sum of squares before it; the
// update is the three-output kernel's.
TEST(AdamWKernel, ABf16OutputTakesTheUpdatedParameterRounded) {
  FirstStep step;
  const int64_t n = step.n;
  std::vector<OwnedTensor> three(3, OwnedTensor(DType::kF32, {n}));
  ASSERT_TRUE(step.Run({&three[0], &three[1], &three[2]}).ok());
  std::vector<float> rounded;
  for (float p : three[0].Values<float>()) {
    rounded.push_back(BFloat16BitsToFloat(FloatToBFloat16Bits(p)));
  }
  for (bool with_sum : {false, true}) {
    std::vector<OwnedTensor> out(3, OwnedTensor(DType::kF32, {n}));
    OwnedTensor sum(DType::kF32, {}), copy(DType::kBF16, {n});
    std::vector<OwnedTensor*> outputs = {&out[0], &out[1], &out[2]};
    if (with_sum) outputs.push_back(&sum);
    outputs.push_back(&copy);
    absl::Status status = step.Run(outputs);
    ASSERT_TRUE(status.ok()) << status;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i].Values<float>(), three[i].Values<float>());
    EXPECT_EQ(testing::WidenedBf16(copy), rounded) << "with sum " << with_sum;
  }
  // The copy has the parameter's shape.
  OwnedTensor short_copy(DType::kBF16, {n - 1});
  std::vector<OwnedTensor> out(3, OwnedTensor(DType::kF32, {n}));
  EXPECT_EQ(step.Run({&out[0], &out[1], &out[2], &short_copy}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace veomni::runtime
