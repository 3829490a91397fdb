// Gradient kernels against central finite differences of the forward kernels
// (f32 forward, differences taken in double), and against naive closed forms
// where those are easy to write independently.

#include <cmath>
#include <functional>

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
using testing::WeightedSum;
using testing::NumericalGradient;

// Runs a single-output forward kernel and returns its values.
std::function<std::vector<float>()> Forward(const std::string& name, const KernelAttrs& attrs,
                                            std::vector<const OwnedTensor*> inputs,
                                            std::vector<int64_t> out_shape) {
  return [=]() {
    OwnedTensor out(DType::kF32, out_shape);
    absl::Status status = RunKernel(name, attrs, inputs, {&out});
    EXPECT_TRUE(status.ok()) << status;
    return out.Values<float>();
  };
}

TEST(CpuModelGrad, RmsNormGradMatchesFiniteDifferences) {
  std::mt19937 rng(20);
  std::vector<int64_t> shape = {2, 3, 8};
  OwnedTensor x = testing::RandomF32(shape, rng, -2, 2);
  OwnedTensor w = testing::RandomF32({8}, rng, 0.5f, 1.5f);
  std::vector<float> dy_values = testing::RandomFloats(48, rng);
  OwnedTensor dy = F32(shape, dy_values);
  KernelAttrs attrs;
  attrs.SetFloat("epsilon", 1e-5);
  OwnedTensor dx(DType::kF32, shape);
  OwnedTensor dw(DType::kF32, {8});
  ASSERT_TRUE(RunKernel("rms_norm_grad", attrs, {&x, &w, &dy}, {&dx, &dw}).ok());
  auto forward = Forward("rms_norm", attrs, {&x, &w}, shape);
  EXPECT_TRUE(testing::AllClose(dx.Values<float>(), NumericalGradient(x, forward, dy_values),
                                kGradAtol, kGradRtol));
  EXPECT_TRUE(testing::AllClose(dw.Values<float>(), NumericalGradient(w, forward, dy_values),
                                kGradAtol, kGradRtol));
  // dw by its definition: sum over rows of dy * x / rms(x).
  std::vector<double> dw_naive(8, 0.0);
  for (int row = 0; row < 6; ++row) {
    double mean_square = 0;
    for (int j = 0; j < 8; ++j) mean_square += std::pow(x.Values<float>()[row * 8 + j], 2) / 8;
    for (int j = 0; j < 8; ++j) {
      dw_naive[j] += dy_values[row * 8 + j] * x.Values<float>()[row * 8 + j] /
                     std::sqrt(mean_square + 1e-5);
    }
  }
  EXPECT_TRUE(testing::AllClose(dw.Values<float>(), dw_naive, 1e-6, 1e-5));
}

TEST(CpuModelGrad, RopeGradIsTheExactTransposeForArbitraryCosSin) {
  std::mt19937 rng(21);
  const int64_t b = 2, h = 2, s = 3, d = 4;
  std::vector<int64_t> shape = {b, h, s, d};
  // cos/sin are random (not a rotation), so transpose != inverse, and each
  // pair of shapes exercises a different broadcast of sin's partner lookup.
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> table_shapes = {
      {{s, d}, {b, 1, s, d}}, {{1}, {s, 1}}, {{b, h, s, d}, {d}}};
  for (const auto& [cos_shape, sin_shape] : table_shapes) {
    OwnedTensor cos = testing::RandomF32(cos_shape, rng);
    OwnedTensor sin = testing::RandomF32(sin_shape, rng);
    std::vector<float> dy_values = testing::RandomFloats(b * h * s * d, rng);
    OwnedTensor dy = F32(shape, dy_values);
    OwnedTensor dx(DType::kF32, shape);
    ASSERT_TRUE(RunKernel("rope_grad", {}, {&dy, &cos, &sin}, {&dx}).ok());

    // rope is linear in x: dx_j = <rope(e_j), dy> with e_j the j-th basis tensor.
    std::vector<double> transpose;
    OwnedTensor basis(DType::kF32, shape);
    for (int64_t j = 0; j < basis.NumElements(); ++j) {
      basis.Data<float>()[j] = 1.0f;
      OwnedTensor column(DType::kF32, shape);
      ASSERT_TRUE(RunKernel("rope", {}, {&basis, &cos, &sin}, {&column}).ok());
      transpose.push_back(WeightedSum(column.Values<float>(), dy_values));
      basis.Data<float>()[j] = 0.0f;
    }
    EXPECT_TRUE(testing::AllClose(dx.Values<float>(), transpose, 1e-6, 1e-6))
        << "cos " << FormatShape(cos_shape) << " sin " << FormatShape(sin_shape);

    OwnedTensor x = testing::RandomF32(shape, rng);
    auto forward = Forward("rope", {}, {&x, &cos, &sin}, shape);
    EXPECT_TRUE(testing::AllClose(dx.Values<float>(), NumericalGradient(x, forward, dy_values),
                                  kGradAtol, kGradRtol));
  }
}

TEST(CpuModelGrad, SwigluGradMatchesFiniteDifferencesAndClosedForm) {
  std::mt19937 rng(22);
  std::vector<int64_t> shape = {3, 5};
  OwnedTensor gate = testing::RandomF32(shape, rng, -4, 4);
  OwnedTensor up = testing::RandomF32(shape, rng);
  std::vector<float> dy_values = testing::RandomFloats(15, rng);
  OwnedTensor dy = F32(shape, dy_values);
  OwnedTensor dgate(DType::kF32, shape);
  OwnedTensor dup(DType::kF32, shape);
  ASSERT_TRUE(RunKernel("swiglu_grad", {}, {&gate, &up, &dy}, {&dgate, &dup}).ok());
  auto forward = Forward("swiglu", {}, {&gate, &up}, shape);
  EXPECT_TRUE(testing::AllClose(dgate.Values<float>(), NumericalGradient(gate, forward, dy_values),
                                kGradAtol, kGradRtol));
  EXPECT_TRUE(testing::AllClose(dup.Values<float>(), NumericalGradient(up, forward, dy_values),
                                kGradAtol, kGradRtol));
  // d/dg [g * sigmoid(g)] = sigmoid(g) + g * sigmoid'(g).
  std::vector<double> dgate_naive, dup_naive;
  for (int i = 0; i < 15; ++i) {
    double g = gate.Values<float>()[i];
    double sig = 1 / (1 + std::exp(-g));
    dgate_naive.push_back(dy_values[i] * up.Values<float>()[i] * (sig + g * sig * (1 - sig)));
    dup_naive.push_back(dy_values[i] * g * sig);
  }
  EXPECT_TRUE(testing::AllClose(dgate.Values<float>(), dgate_naive, 1e-7, 1e-6));
  EXPECT_TRUE(testing::AllClose(dup.Values<float>(), dup_naive, 1e-7, 1e-6));
}

TEST(CpuModelGrad, SwigluGradOfBf16GateAndUpIsTheF32GradOfTheirValues) {
  // vo-bf16-matmuls keeps gate and up in bf16 beside an f32 output gradient:
  // the gradients are those of the widened values, bit for bit.
  std::mt19937 rng(23);
  std::vector<int64_t> shape = {3, 7};
  OwnedTensor gate = testing::RoundedToBf16(testing::RandomF32(shape, rng, -4, 4));
  OwnedTensor up = testing::RoundedToBf16(testing::RandomF32(shape, rng));
  OwnedTensor gate32 = F32(shape, testing::WidenedBf16(gate));
  OwnedTensor up32 = F32(shape, testing::WidenedBf16(up));
  OwnedTensor dy = testing::RandomF32(shape, rng);
  OwnedTensor dg16(DType::kF32, shape), du16(DType::kF32, shape);
  OwnedTensor dg32(DType::kF32, shape), du32(DType::kF32, shape);
  ASSERT_TRUE(RunKernel("swiglu_grad", {}, {&gate, &up, &dy}, {&dg16, &du16}).ok());
  ASSERT_TRUE(RunKernel("swiglu_grad", {}, {&gate32, &up32, &dy}, {&dg32, &du32}).ok());
  EXPECT_EQ(dg16.Values<float>(), dg32.Values<float>());
  EXPECT_EQ(du16.Values<float>(), du32.Values<float>());
  // The gradients stay f32; up must match gate.
  OwnedTensor dg_bf16(DType::kBF16, shape);
  EXPECT_EQ(RunKernel("swiglu_grad", {}, {&gate, &up, &dy}, {&dg_bf16, &du16}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKernel("swiglu_grad", {}, {&gate, &up32, &dy}, {&dg16, &du16}).code(),
            absl::StatusCode::kInvalidArgument);
}

struct AttentionGradCase {
  const char* label;
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, value_dim;
  bool causal;
  std::vector<int64_t> cu_seqlens;
};

void ExpectAttentionGradMatchesFiniteDifferences(const AttentionGradCase& c) {
  SCOPED_TRACE(c.label);
  std::mt19937 rng(23);
  std::vector<int64_t> q_shape = {c.batch, c.q_heads, c.q_len, c.head_dim};
  std::vector<int64_t> k_shape = {c.batch, c.kv_heads, c.kv_len, c.head_dim};
  std::vector<int64_t> v_shape = {c.batch, c.kv_heads, c.kv_len, c.value_dim};
  std::vector<int64_t> out_shape = {c.batch, c.q_heads, c.q_len, c.value_dim};
  OwnedTensor q = testing::RandomF32(q_shape, rng, -1.5f, 1.5f);
  OwnedTensor k = testing::RandomF32(k_shape, rng, -1.5f, 1.5f);
  OwnedTensor v = testing::RandomF32(v_shape, rng);
  std::vector<float> dout_values = testing::RandomFloats(testing::NumElementsOf(out_shape), rng);
  OwnedTensor dout = F32(out_shape, dout_values);
  std::vector<int32_t> cu32(c.cu_seqlens.begin(), c.cu_seqlens.end());
  OwnedTensor cu = I32({int64_t(cu32.size())}, cu32);
  KernelAttrs attrs;
  attrs.SetFloat("scale", 0.6);
  attrs.SetInt("causal", c.causal ? 1 : 0);

  std::vector<const OwnedTensor*> forward_inputs = {&q, &k, &v};
  std::vector<const OwnedTensor*> grad_inputs = {&q, &k, &v, &dout};
  if (!c.cu_seqlens.empty()) {
    forward_inputs.push_back(&cu);
    grad_inputs.push_back(&cu);
  }
  OwnedTensor dq(DType::kF32, q_shape);
  OwnedTensor dk(DType::kF32, k_shape);
  OwnedTensor dv(DType::kF32, v_shape);
  absl::Status status = RunKernel("attention_grad", attrs, grad_inputs, {&dq, &dk, &dv});
  ASSERT_TRUE(status.ok()) << status;
  auto forward = Forward("attention", attrs, forward_inputs, out_shape);
  EXPECT_TRUE(testing::AllClose(dq.Values<float>(), NumericalGradient(q, forward, dout_values),
                                kGradAtol, kGradRtol));
  EXPECT_TRUE(testing::AllClose(dk.Values<float>(), NumericalGradient(k, forward, dout_values),
                                kGradAtol, kGradRtol));
  EXPECT_TRUE(testing::AllClose(dv.Values<float>(), NumericalGradient(v, forward, dout_values),
                                kGradAtol, kGradRtol));
}

TEST(CpuModelGrad, AttentionGradGqaNonCausal) {
  ExpectAttentionGradMatchesFiniteDifferences({"gqa", 2, 4, 2, 3, 5, 4, 3, false, {}});
}

TEST(CpuModelGrad, AttentionGradGqaCausal) {
  ExpectAttentionGradMatchesFiniteDifferences({"gqa causal", 2, 4, 2, 5, 5, 4, 3, true, {}});
}

TEST(CpuModelGrad, AttentionGradPackedDocuments) {
  ExpectAttentionGradMatchesFiniteDifferences(
      {"documents causal", 1, 4, 2, 7, 7, 4, 3, true, {0, 3, 7}});
  ExpectAttentionGradMatchesFiniteDifferences(
      {"documents across rows", 2, 2, 1, 4, 4, 4, 4, false, {0, 2, 6, 8}});
  // Tokens 5..7 are in no document: their dq rows and key grads are zero.
  ExpectAttentionGradMatchesFiniteDifferences(
      {"uncovered tokens", 2, 2, 2, 4, 4, 4, 4, true, {0, 1, 5}});
}

TEST(CpuModelGrad, AttentionGradRejectsBadDout) {
  OwnedTensor q(DType::kF32, {1, 2, 3, 4});
  OwnedTensor k(DType::kF32, {1, 2, 3, 4});
  OwnedTensor v(DType::kF32, {1, 2, 3, 5});
  OwnedTensor dout(DType::kF32, {1, 2, 3, 4});
  OwnedTensor dq(DType::kF32, {1, 2, 3, 4}), dk(DType::kF32, {1, 2, 3, 4}),
      dv(DType::kF32, {1, 2, 3, 5});
  EXPECT_EQ(RunKernel("attention_grad", {}, {&q, &k, &v, &dout}, {&dq, &dk, &dv}).message(),
            "attention_grad: dout has shape [1, 2, 3, 4], expected [1, 2, 3, 5]");
  EXPECT_EQ(RunKernel("attention_grad", {}, {&q, &k, &v, &dout}, {&dq, &dk}).message(),
            "attention_grad: expects 3 outputs, got 2");
}

// (softmax - onehot) * scale per non-ignored row.
std::vector<double> NaiveCrossEntropyGrad(const std::vector<float>& logits,
                                          const std::vector<int64_t>& labels, int64_t vocab,
                                          const std::vector<double>& row_scale) {
  std::vector<double> grad;
  for (size_t r = 0; r < labels.size(); ++r) {
    double total = 0;
    for (int64_t c = 0; c < vocab; ++c) total += std::exp(double(logits[r * vocab + c]));
    for (int64_t c = 0; c < vocab; ++c) {
      double softmax = std::exp(double(logits[r * vocab + c])) / total;
      grad.push_back(row_scale[r] * (softmax - (c == labels[r] ? 1.0 : 0.0)));
    }
  }
  return grad;
}

TEST(CpuModelGrad, CrossEntropyGradForEveryReduction) {
  std::mt19937 rng(24);
  const int64_t vocab = 6;
  std::vector<int64_t> logits_shape = {2, 3, vocab};
  OwnedTensor logits = testing::RandomF32(logits_shape, rng, -3, 3);
  std::vector<int64_t> label_values = {0, -100, 5, 2, 2, -100};
  OwnedTensor labels = I64({2, 3}, label_values);
  for (int64_t reduction : {0, 1, 2}) {
    SCOPED_TRACE(::testing::Message() << "reduction " << reduction);
    KernelAttrs attrs;
    attrs.SetInt("reduction", reduction);
    attrs.SetInt("ignore_index", -100);
    bool per_token = reduction == 2;
    std::vector<int64_t> loss_shape = per_token ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{};
    std::vector<float> dloss_values =
        per_token ? testing::RandomFloats(6, rng) : std::vector<float>{0.7f};
    OwnedTensor dloss = F32(loss_shape, dloss_values);
    OwnedTensor dlogits(DType::kF32, logits_shape);
    ASSERT_TRUE(RunKernel("cross_entropy_grad", attrs, {&logits, &labels, &dloss}, {&dlogits}).ok());
    auto forward = Forward("cross_entropy", attrs, {&logits, &labels}, loss_shape);
    EXPECT_TRUE(testing::AllClose(dlogits.Values<float>(),
                                  NumericalGradient(logits, forward, dloss_values), kGradAtol,
                                  kGradRtol));
    std::vector<double> row_scale;
    for (int r = 0; r < 6; ++r) {
      double scale = label_values[r] == -100 ? 0.0 : (per_token ? dloss_values[r] : 0.7);
      row_scale.push_back(reduction == 0 ? scale / 4 : scale);
    }
    std::vector<int64_t> safe_labels = label_values;
    for (int64_t& label : safe_labels) label = label == -100 ? 0 : label;
    EXPECT_TRUE(testing::AllClose(
        dlogits.Values<float>(),
        NaiveCrossEntropyGrad(logits.Values<float>(), safe_labels, vocab, row_scale), 1e-7,
        1e-5));
  }
}

TEST(CpuModelGrad, CrossEntropyGradBf16OutputIsTheF32GradientRounded) {
  // vo-bf16-matmuls asks for the gradient in bf16: each element is the f32
  // one rounded to nearest even, ignored rows zero.
  std::mt19937 rng(26);
  const int64_t vocab = 37;
  OwnedTensor logits = testing::RandomF32({4, vocab}, rng, -4, 4);
  OwnedTensor labels = I64({4}, {3, -100, 36, 0});
  OwnedTensor dloss = F32({}, {0.9f});
  OwnedTensor f32(DType::kF32, {4, vocab});
  OwnedTensor bf16(DType::kBF16, {4, vocab});
  ASSERT_TRUE(RunKernel("cross_entropy_grad", {}, {&logits, &labels, &dloss}, {&f32}).ok());
  ASSERT_TRUE(RunKernel("cross_entropy_grad", {}, {&logits, &labels, &dloss}, {&bf16}).ok());
  EXPECT_EQ(testing::WidenedBf16(bf16), testing::WidenedBf16(testing::RoundedToBf16(f32)));
  // And the rounding is of the right gradient (not only of this kernel's).
  std::vector<double> row_scale = {0.9 / 3, 0.0, 0.9 / 3, 0.9 / 3};
  EXPECT_TRUE(testing::AllClose(testing::WidenedBf16(bf16),
                                NaiveCrossEntropyGrad(logits.Values<float>(), {3, 0, 36, 0},
                                                      vocab, row_scale),
                                1e-7, 1.0 / 128));
  OwnedTensor i64_out(DType::kI64, {4, vocab});
  EXPECT_EQ(RunKernel("cross_entropy_grad", {}, {&logits, &labels, &dloss}, {&i64_out}).message(),
            "cross_entropy_grad: output has dtype i64, expected f32");
}

TEST(CpuModelGrad, CrossEntropyGradAllIgnoredIsZero) {
  OwnedTensor logits = F32({2, 2}, {1, 2, 3, 4});
  OwnedTensor labels = I32({2}, {-100, -100});
  OwnedTensor dloss = F32({}, {1.0f});
  OwnedTensor dlogits = F32({2, 2}, {9, 9, 9, 9});
  ASSERT_TRUE(RunKernel("cross_entropy_grad", {}, {&logits, &labels, &dloss}, {&dlogits}).ok());
  EXPECT_EQ(dlogits.Values<float>(), (std::vector<float>{0, 0, 0, 0}));
  OwnedTensor per_token_dloss = F32({2}, {1, 1});
  EXPECT_EQ(RunKernel("cross_entropy_grad", {}, {&logits, &labels, &per_token_dloss}, {&dlogits})
                .message(),
            "cross_entropy_grad: dloss has shape [2], expected []");
}

TEST(CpuModelGrad, EmbeddingGradScatterAddsRepeatedIds) {
  std::mt19937 rng(25);
  const int64_t vocab = 6, hidden = 3;
  std::vector<int64_t> id_values = {4, 1, 4, 0, 4, 5};
  OwnedTensor ids = I64({2, 3}, id_values);
  std::vector<float> dy_values = testing::RandomFloats(18, rng);
  OwnedTensor dy = F32({2, 3, hidden}, dy_values);
  OwnedTensor dtable = F32({vocab, hidden}, std::vector<float>(18, 42.0f));  // must be cleared
  ASSERT_TRUE(RunKernel("embedding_grad", {}, {&ids, &dy}, {&dtable}).ok());
  std::vector<double> expected(vocab * hidden, 0.0);
  for (int t = 0; t < 6; ++t) {
    for (int c = 0; c < hidden; ++c) expected[id_values[t] * hidden + c] += dy_values[t * hidden + c];
  }
  EXPECT_TRUE(testing::AllClose(dtable.Values<float>(), expected, 1e-7, 1e-6));

  OwnedTensor table = testing::RandomF32({vocab, hidden}, rng);
  auto forward = Forward("embedding", {}, {&table, &ids}, {2, 3, hidden});
  EXPECT_TRUE(testing::AllClose(dtable.Values<float>(), NumericalGradient(table, forward, dy_values),
                                kGradAtol, kGradRtol));

  OwnedTensor bad_ids = I32({2, 3}, {0, 1, 2, 3, 4, 6});
  absl::Status status = RunKernel("embedding_grad", {}, {&bad_ids, &dy}, {&dtable});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "embedding_grad: token id 6 is outside the vocabulary [0, 6)");
}

}  // namespace
}  // namespace veomni::runtime
