//===- GradientCheckTest.cpp - every gradient rule vs finite differences --===//
//
// For each differentiable op: loss = sum(op(parameters) * fixed weights) is
// differentiated by vo-autodiff, lowered, planned, written as an artifact and
// run by the CPU runtime. The runtime's gradient must match central finite
// differences of the runtime's own forward. The weights make every output
// element matter differently (a plain sum of a softmax has zero gradient).
//
//===----------------------------------------------------------------------===//

#include "compiler/ArtifactWriter.h"
#include "compiler/InitVeomni.h"
#include "passes/Passes.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/executor/Executor.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

namespace {

using Shape = std::vector<int64_t>;

int64_t count(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string tensorType(const Shape &shape, const char *element = "f32") {
  std::string text = "tensor<";
  for (int64_t d : shape)
    text += std::to_string(d) + "x";
  return text + element + ">";
}

/// A dense f32 literal of any shape, as little-endian hex.
std::string hexLiteral(const std::vector<float> &values) {
  std::ostringstream os;
  os << "dense<\"0x";
  for (float v : values) {
    unsigned char bytes[4];
    std::memcpy(bytes, &v, 4);
    for (unsigned char b : bytes) {
      static const char *digits = "0123456789ABCDEF";
      os << digits[b >> 4] << digits[b & 15];
    }
  }
  os << "\">";
  return os.str();
}

enum class Domain { Any, Positive };

struct GradCase {
  std::string name;
  std::vector<std::pair<std::string, Shape>> params;
  std::string body; // defines %y from the params
  Shape out;
  Domain domain = Domain::Any;
};

void PrintTo(const GradCase &c, std::ostream *os) { *os << c.name; }

std::vector<float> randomValues(int64_t n, Domain domain, std::mt19937 &rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (float &v : values)
    v = domain == Domain::Positive ? 0.5f + std::fabs(uniform(rng)) : uniform(rng);
  return values;
}

std::string buildModule(const GradCase &c, std::mt19937 &rng) {
  std::ostringstream os;
  for (auto &[name, shape] : c.params)
    os << "vo.parameter @" << name << " : " << tensorType(shape) << " = "
       << hexLiteral(randomValues(count(shape), c.domain, rng)) << "\n";
  os << "func.func @forward() -> (tensor<f32> {vo.name = \"loss\"}) {\n";
  for (auto &[name, shape] : c.params)
    os << "  %" << name << " = vo.param @" << name << " : " << tensorType(shape)
       << "\n";
  os << c.body << "\n";
  std::string outType = tensorType(c.out);
  os << "  %weights = vo.constant "
     << hexLiteral(randomValues(count(c.out), Domain::Any, rng)) << " : " << outType << "\n";
  os << "  %p = vo.mul %y, %weights : " << outType << ", " << outType << "\n";
  if (c.out.empty()) {
    os << "  return %p : tensor<f32>\n}\n";
    return os.str();
  }
  os << "  %l = vo.reduce_sum %p axes = [";
  for (size_t i = 0; i < c.out.size(); ++i)
    os << (i ? ", " : "") << i;
  os << "] : " << outType << "\n  return %l : tensor<f32>\n}\n";
  return os.str();
}

std::vector<GradCase> gradCases() {
  std::vector<GradCase> cases;
  auto binary = [&](const std::string &op, Domain domain = Domain::Any) {
    cases.push_back({op,
                     {{"a", {2, 3}}, {"b", {3}}},
                     "  %y = vo." + op + " %a, %b : tensor<2x3xf32>, tensor<3xf32>",
                     {2, 3},
                     domain});
  };
  for (const char *op : {"add", "sub", "mul", "maximum", "minimum"})
    binary(op);
  binary("div", Domain::Positive);
  binary("pow", Domain::Positive);
  auto unary = [&](const std::string &op, Domain domain = Domain::Any,
                   const std::string &attrs = "") {
    cases.push_back({op + attrs,
                     {{"a", {2, 3}}},
                     "  %y = vo." + op + " %a" + attrs + " : tensor<2x3xf32>",
                     {2, 3},
                     domain});
  };
  for (const char *op : {"neg", "exp", "tanh", "erf", "cos", "sin", "sigmoid",
                         "silu", "gelu"})
    unary(op);
  unary("gelu", Domain::Any, " approximate = tanh");
  for (const char *op : {"log", "sqrt", "rsqrt", "reciprocal"})
    unary(op, Domain::Positive);
  cases.push_back({"select",
                   {{"a", {2, 3}}, {"b", {2, 3}}},
                   "  %c = vo.cmp lt, %a, %b : tensor<2x3xf32>, tensor<2x3xf32>\n"
                   "  %y = vo.select %c, %a, %b : tensor<2x3xi1>, tensor<2x3xf32>, "
                   "tensor<2x3xf32>",
                   {2, 3}});
  // Matmul: all transpose combinations, and a broadcast batch.
  cases.push_back({"matmul", {{"a", {2, 3}}, {"b", {3, 4}}},
                   "  %y = vo.matmul %a, %b : tensor<2x3xf32>, tensor<3x4xf32>", {2, 4}});
  cases.push_back({"matmul_tl", {{"a", {3, 2}}, {"b", {3, 4}}},
                   "  %y = vo.matmul %a, %b transpose_lhs : tensor<3x2xf32>, tensor<3x4xf32>",
                   {2, 4}});
  cases.push_back({"matmul_tr", {{"a", {2, 3}}, {"b", {4, 3}}},
                   "  %y = vo.matmul %a, %b transpose_rhs : tensor<2x3xf32>, tensor<4x3xf32>",
                   {2, 4}});
  cases.push_back({"matmul_tl_tr", {{"a", {3, 2}}, {"b", {4, 3}}},
                   "  %y = vo.matmul %a, %b transpose_lhs transpose_rhs : tensor<3x2xf32>, "
                   "tensor<4x3xf32>",
                   {2, 4}});
  cases.push_back({"matmul_linear_batched", {{"x", {2, 3, 4}}, {"w", {5, 4}}},
                   "  %y = vo.matmul %x, %w transpose_rhs : tensor<2x3x4xf32>, tensor<5x4xf32>",
                   {2, 3, 5}});
  cases.push_back({"matmul_batched_rhs", {{"a", {3, 4}}, {"b", {2, 4, 2}}},
                   "  %y = vo.matmul %a, %b : tensor<3x4xf32>, tensor<2x4x2xf32>", {2, 3, 2}});
  // Reductions and normalizations.
  cases.push_back({"reduce_sum", {{"a", {2, 3, 4}}},
                   "  %y = vo.reduce_sum %a axes = [1] : tensor<2x3x4xf32>", {2, 4}});
  cases.push_back({"reduce_sum_squares", {{"a", {2, 3, 4}}},
                   "  %y = vo.reduce_sum_squares %a axes = [0, 2] : tensor<2x3x4xf32>", {3}});
  cases.push_back({"reduce_mean", {{"a", {2, 3, 4}}},
                   "  %y = vo.reduce_mean %a axes = [0, 2] keep_dims : tensor<2x3x4xf32>",
                   {1, 3, 1}});
  cases.push_back({"reduce_max", {{"a", {2, 5}}},
                   "  %y = vo.reduce_max %a axes = [1] : tensor<2x5xf32>", {2}});
  cases.push_back({"softmax", {{"a", {2, 5}}},
                   "  %y = vo.softmax %a axis = 1 : tensor<2x5xf32>", {2, 5}});
  cases.push_back({"log_softmax", {{"a", {2, 5}}},
                   "  %y = vo.log_softmax %a axis = 0 : tensor<2x5xf32>", {2, 5}});
  // Shapes.
  cases.push_back({"reshape", {{"a", {2, 6}}},
                   "  %y = vo.reshape %a to [3, 4] : tensor<2x6xf32>", {3, 4}});
  cases.push_back({"transpose", {{"a", {2, 3, 4}}},
                   "  %y = vo.transpose %a perm = [2, 0, 1] : tensor<2x3x4xf32>", {4, 2, 3}});
  cases.push_back({"slice", {{"a", {4, 5}}},
                   "  %y = vo.slice %a start = [1, 0] limit = [3, 4] stride = [1, 1] : "
                   "tensor<4x5xf32>",
                   {2, 4}});
  cases.push_back({"concat", {{"a", {2, 3}}, {"b", {2, 2}}},
                   "  %y = vo.concat %a, %b axis = 1 : tensor<2x3xf32>, tensor<2x2xf32>", {2, 5}});
  cases.push_back({"broadcast_to", {{"a", {3, 1}}},
                   "  %y = vo.broadcast_to %a to [2, 3, 4] : tensor<3x1xf32>", {2, 3, 4}});
  // Model ops.
  cases.push_back({"embedding", {{"t", {6, 4}}},
                   "  %ids = vo.constant dense<[[1, 3, 1], [5, 0, 2]]> : tensor<2x3xi64>\n"
                   "  %y = vo.embedding %t, %ids : tensor<6x4xf32>, tensor<2x3xi64>",
                   {2, 3, 4}});
  cases.push_back({"rms_norm", {{"x", {3, 8}}, {"g", {8}}},
                   "  %y = vo.rms_norm %x, %g epsilon = 1.0e-5 : tensor<3x8xf32>, tensor<8xf32>",
                   {3, 8}});
  cases.push_back({"rope", {{"x", {1, 2, 3, 4}}},
                   "  %c = vo.constant dense<[[[[0.9, 0.5, 0.1, -0.3], [0.2, -0.7, 0.6, 0.8], "
                   "[-0.4, 0.3, 0.95, 0.05]]]]> : tensor<1x1x3x4xf32>\n"
                   "  %s = vo.constant dense<[[[[0.4, -0.8, 0.99, 0.6], [0.7, 0.1, -0.5, 0.3], "
                   "[0.9, -0.2, 0.25, 0.45]]]]> : tensor<1x1x3x4xf32>\n"
                   "  %y = vo.rope %x, %c, %s : tensor<1x2x3x4xf32>, tensor<1x1x3x4xf32>, "
                   "tensor<1x1x3x4xf32>",
                   {1, 2, 3, 4}});
  cases.push_back({"swiglu", {{"g", {2, 5}}, {"u", {2, 5}}},
                   "  %y = vo.swiglu %g, %u : tensor<2x5xf32>, tensor<2x5xf32>", {2, 5}});
  cases.push_back({"attention_gqa_causal",
                   {{"q", {1, 4, 3, 4}}, {"k", {1, 2, 3, 4}}, {"v", {1, 2, 3, 4}}},
                   "  %y = vo.attention %q, %k, %v scale = 0.5 causal : tensor<1x4x3x4xf32>, "
                   "tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>",
                   {1, 4, 3, 4}});
  cases.push_back({"attention_full",
                   {{"q", {2, 2, 3, 4}}, {"k", {2, 2, 5, 4}}, {"v", {2, 2, 5, 2}}},
                   "  %y = vo.attention %q, %k, %v scale = 0.5 : tensor<2x2x3x4xf32>, "
                   "tensor<2x2x5x4xf32>, tensor<2x2x5x2xf32>",
                   {2, 2, 3, 2}});
  cases.push_back({"cross_entropy", {{"x", {4, 6}}},
                   "  %labels = vo.constant dense<[1, -100, 5, 0]> : tensor<4xi64>\n"
                   "  %y = vo.cross_entropy %x, %labels : tensor<4x6xf32>, tensor<4xi64>",
                   {}});
  cases.push_back({"cross_entropy_none", {{"x", {2, 2, 6}}},
                   "  %labels = vo.constant dense<[[1, 2], [-100, 4]]> : tensor<2x2xi64>\n"
                   "  %y = vo.cross_entropy %x, %labels reduction = none : tensor<2x2x6xf32>, "
                   "tensor<2x2xi64>",
                   {2, 2}});
  // The router: weights of the top-2 of 6 experts (selection fixed by the
  // random logits; no near-ties at this size and seed).
  cases.push_back({"moe_gate_normalized", {{"logits", {3, 6}}},
                   "  %y, %e = vo.moe_gate %logits top_k = 2 normalize : tensor<3x6xf32>", {3, 2}});
  cases.push_back({"moe_gate", {{"logits", {3, 6}}},
                   "  %y, %e = vo.moe_gate %logits top_k = 2 : tensor<3x6xf32>", {3, 2}});
  // The experts: 3 tokens, top-2 of 4 experts (token 2 picks expert 1 twice).
  cases.push_back({"moe_experts",
                   {{"x", {3, 5}}, {"w", {3, 2}}, {"gu", {4, 6, 5}}, {"dn", {4, 5, 3}}},
                   "  %ids = vo.constant dense<[[0, 3], [2, 1], [1, 1]]> : tensor<3x2xi64>\n"
                   "  %y = vo.moe_experts %x, %ids, %w, %gu, %dn : tensor<3x5xf32>, "
                   "tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x6x5xf32>, tensor<4x5x3xf32>",
                   {3, 5}});
  return cases;
}

class GradientCheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradientCheck, MatchesFiniteDifferences) {
  const GradCase &c = GetParam();
  std::mt19937 rng(std::hash<std::string>()(c.name) & 0xffff);
  std::string text = buildModule(c, rng);

  mlir::DialectRegistry registry;
  veomni::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &context);
  ASSERT_TRUE(module) << text;
  mlir::PassManager pm(&context);
  pm.addPass(veomni::createVoAutodiff());
  pm.addPass(veomni::createVoLowerToVrt());
  pm.addPass(veomni::createVrtPlanMemory());
  ASSERT_TRUE(mlir::succeeded(pm.run(*module))) << text;
  std::string path = ::testing::TempDir() + "/gradcheck_" + c.name + ".vob";
  llvm::Error written = veomni::writeArtifact(*module, veomni::ArtifactMetadata(), path);
  ASSERT_FALSE(static_cast<bool>(written)) << llvm::toString(std::move(written));

  auto artifact = veomni::runtime::Artifact::Load(path);
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  auto executor = veomni::runtime::Executor::Create(std::move(*artifact), {});
  ASSERT_TRUE(executor.ok()) << executor.status();
  veomni::runtime::Executor &run = **executor;
  ASSERT_TRUE(run.Run("forward_backward").ok());

  auto loss = [&]() {
    auto status = run.Run("forward");
    EXPECT_TRUE(status.ok()) << status;
    return static_cast<double>(*run.Output("forward", "loss")->As<float>());
  };
  // Outputs live in the arena, which every later Run reuses: copy them all
  // before the finite differences run the forward.
  std::vector<std::vector<float>> grads;
  for (auto &[name, shape] : c.params) {
    auto grad = run.Output("forward_backward", "grad." + name);
    ASSERT_TRUE(grad.ok()) << grad.status();
    grads.emplace_back(grad->As<float>(), grad->As<float>() + count(shape));
  }
  for (size_t p = 0; p < c.params.size(); ++p) {
    auto &[name, shape] = c.params[p];
    const std::vector<float> &analytic = grads[p];
    auto param = run.State("param:" + name);
    ASSERT_TRUE(param.ok());
    float *values = param->As<float>();
    double scale = 1e-3;
    for (float g : analytic)
      scale = std::max(scale, static_cast<double>(std::fabs(g)));
    for (int64_t i = 0; i < count(shape); ++i) {
      const float h = 1e-2f, original = values[i];
      values[i] = original + h;
      double plus = loss();
      values[i] = original - h;
      double minus = loss();
      values[i] = original;
      double numeric = (plus - minus) / (2.0 * h);
      EXPECT_NEAR(analytic[i], numeric, 2e-3 + 2e-2 * scale)
          << c.name << ": d loss / d " << name << "[" << i << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryRule, GradientCheck, ::testing::ValuesIn(gradCases()),
                         [](const ::testing::TestParamInfo<GradCase> &info) {
                           std::string name = info.param.name;
                           for (char &ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return name;
                         });

} // namespace
