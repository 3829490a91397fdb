// The LLM kernels (embedding, rms_norm, rope, swiglu, attention,
// cross_entropy) against naive references written from their definitions.

#include <algorithm>
#include <cmath>
#include <limits>

#include "KernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RunKernel;

TEST(CpuModel, EmbeddingGathersRows) {
  OwnedTensor table = F32({4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  OwnedTensor ids = I64({2, 2}, {3, 0, 1, 3});
  OwnedTensor out(DType::kF32, {2, 2, 2});
  ASSERT_TRUE(RunKernel("embedding", {}, {&table, &ids}, {&out}).ok());
  EXPECT_EQ(out.Values<float>(), (std::vector<float>{30, 31, 0, 1, 10, 11, 30, 31}));
  OwnedTensor ids32 = I32({1}, {2});
  OwnedTensor row(DType::kF32, {1, 2});
  ASSERT_TRUE(RunKernel("embedding", {}, {&table, &ids32}, {&row}).ok());
  EXPECT_EQ(row.Values<float>(), (std::vector<float>{20, 21}));
}

TEST(CpuModel, EmbeddingRejectsTokenOutsideVocabulary) {
  OwnedTensor table(DType::kF32, {256, 4});
  OwnedTensor ids = I64({3}, {1, 300, 2});
  OwnedTensor out(DType::kF32, {3, 4});
  absl::Status status = RunKernel("embedding", {}, {&table, &ids}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "embedding: token id 300 is outside the vocabulary [0, 256)");
  OwnedTensor negative = I32({1}, {-1});
  OwnedTensor one(DType::kF32, {1, 4});
  EXPECT_EQ(RunKernel("embedding", {}, {&table, &negative}, {&one}).code(),
            absl::StatusCode::kOutOfRange);
  OwnedTensor float_ids = F32({1}, {1});
  EXPECT_EQ(RunKernel("embedding", {}, {&table, &float_ids}, {&one}).message(),
            "embedding: ids have dtype f32, expected i64 or i32");
  OwnedTensor wrong(DType::kF32, {3, 5});
  OwnedTensor good_ids = I64({3}, {1, 2, 3});
  EXPECT_EQ(RunKernel("embedding", {}, {&table, &good_ids}, {&wrong}).message(),
            "embedding: output has shape [3, 5], expected [3, 4]");
}

TEST(CpuModel, RmsNormMatchesDefinition) {
  std::mt19937 rng(7);
  OwnedTensor x = testing::RandomF32({2, 3, 8}, rng, -2.0f, 2.0f);
  OwnedTensor w = testing::RandomF32({8}, rng, 0.5f, 1.5f);
  OwnedTensor y(DType::kF32, {2, 3, 8});
  KernelAttrs attrs;
  attrs.SetFloat("epsilon", 1e-5);
  ASSERT_TRUE(RunKernel("rms_norm", attrs, {&x, &w}, {&y}).ok());
  std::vector<double> expected;
  for (int row = 0; row < 6; ++row) {
    double mean_square = 0;
    for (int j = 0; j < 8; ++j) mean_square += std::pow(x.Values<float>()[row * 8 + j], 2) / 8;
    for (int j = 0; j < 8; ++j) {
      expected.push_back(x.Values<float>()[row * 8 + j] / std::sqrt(mean_square + 1e-5) *
                         w.Values<float>()[j]);
    }
  }
  EXPECT_TRUE(testing::AllClose(y.Values<float>(), expected, 1e-6, 1e-6));
  OwnedTensor short_w(DType::kF32, {4});
  EXPECT_EQ(RunKernel("rms_norm", attrs, {&x, &short_w}, {&y}).message(),
            "rms_norm: w has shape [4], expected [8]");
  EXPECT_EQ(RunKernel("rms_norm", {}, {&x, &w}, {&y}).message(),
            "rms_norm: attribute 'epsilon' is not set");
}

TEST(CpuModel, RopeHandComputed) {
  OwnedTensor x = F32({4}, {1, 2, 3, 4});
  OwnedTensor cos = F32({1}, {0.5f});
  OwnedTensor sin = F32({4}, {2, 2, 2, 2});
  OwnedTensor y(DType::kF32, {4});
  ASSERT_TRUE(RunKernel("rope", {}, {&x, &cos, &sin}, {&y}).ok());
  // rotate_half([1, 2, 3, 4]) = [-3, -4, 1, 2].
  EXPECT_EQ(y.Values<float>(), (std::vector<float>{-5.5f, -7.0f, 3.5f, 6.0f}));
}

// y[..., i] = x[i] cos[i] + (i < D/2 ? -x[i + D/2] : x[i - D/2]) sin[i].
std::vector<double> NaiveRope(const OwnedTensor& x, const OwnedTensor& cos,
                              const OwnedTensor& sin) {
  const std::vector<int64_t>& shape = x.shape();
  int64_t d = shape.back();
  std::vector<double> result;
  for (int64_t flat = 0; flat < x.NumElements(); ++flat) {
    std::vector<int64_t> index = testing::Unravel(shape, flat);
    int64_t i = index.back();
    std::vector<int64_t> partner = index;
    partner.back() = i < d / 2 ? i + d / 2 : i - d / 2;
    double rotated = (i < d / 2 ? -1.0 : 1.0) * x.Data<float>()[testing::Ravel(shape, partner)];
    result.push_back(x.Data<float>()[flat] *
                         double(cos.Data<float>()[testing::BroadcastSource(cos.shape(), index)]) +
                     rotated * sin.Data<float>()[testing::BroadcastSource(sin.shape(), index)]);
  }
  return result;
}

TEST(CpuModel, RopeBroadcastsCosSinOverBatchAndHeads) {
  std::mt19937 rng(8);
  const int64_t b = 2, h = 3, s = 4, d = 6;
  OwnedTensor x = testing::RandomF32({b, h, s, d}, rng);
  // Real rotary tables: angle = position / 10000^(2k/d), duplicated halves.
  std::vector<float> cos_values, sin_values;
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t i = 0; i < d; ++i) {
      double angle = p / std::pow(10000.0, 2.0 * (i % (d / 2)) / d);
      cos_values.push_back(std::cos(angle));
      sin_values.push_back(std::sin(angle));
    }
  }
  OwnedTensor cos = F32({s, d}, cos_values);
  OwnedTensor sin = F32({1, 1, s, d}, sin_values);
  OwnedTensor y(DType::kF32, {b, h, s, d});
  ASSERT_TRUE(RunKernel("rope", {}, {&x, &cos, &sin}, {&y}).ok());
  EXPECT_TRUE(testing::AllClose(y.Values<float>(), NaiveRope(x, cos, sin), 1e-6, 1e-6));

  OwnedTensor odd(DType::kF32, {2, 3});
  OwnedTensor odd_out(DType::kF32, {2, 3});
  EXPECT_EQ(RunKernel("rope", {}, {&odd, &cos, &sin}, {&odd_out}).code(),
            absl::StatusCode::kInvalidArgument);
  OwnedTensor bad_cos(DType::kF32, {5, d});
  EXPECT_EQ(RunKernel("rope", {}, {&x, &bad_cos, &sin}, {&y}).message(),
            "rope: cos [5, 6] does not broadcast to x [2, 3, 4, 6]");
}

TEST(CpuModel, SwigluIsSiluTimesUp) {
  std::mt19937 rng(9);
  OwnedTensor gate = testing::RandomF32({3, 4}, rng, -4.0f, 4.0f);
  OwnedTensor up = testing::RandomF32({3, 4}, rng);
  OwnedTensor y(DType::kF32, {3, 4});
  ASSERT_TRUE(RunKernel("swiglu", {}, {&gate, &up}, {&y}).ok());
  std::vector<double> expected;
  for (int i = 0; i < 12; ++i) {
    double g = gate.Values<float>()[i];
    expected.push_back(g / (1 + std::exp(-g)) * up.Values<float>()[i]);
  }
  EXPECT_TRUE(testing::AllClose(y.Values<float>(), expected, 1e-7, 1e-6));
  OwnedTensor small(DType::kF32, {3, 2});
  EXPECT_EQ(RunKernel("swiglu", {}, {&gate, &small}, {&y}).message(),
            "swiglu: up has shape [3, 2], expected [3, 4]");
}

TEST(CpuModel, SwigluInBf16IsTheF32ResultRounded) {
  // bf16 gate and up (vo-bf16-matmuls) widen exactly; the f32 result of the
  // widened values, rounded to bf16, is the bf16 result bit for bit.
  std::mt19937 rng(19);
  OwnedTensor gate = testing::RoundedToBf16(testing::RandomF32({4, 6}, rng, -4.0f, 4.0f));
  OwnedTensor up = testing::RoundedToBf16(testing::RandomF32({4, 6}, rng));
  OwnedTensor gate32 = F32({4, 6}, testing::WidenedBf16(gate));
  OwnedTensor up32 = F32({4, 6}, testing::WidenedBf16(up));
  OwnedTensor y16(DType::kBF16, {4, 6}), y32(DType::kF32, {4, 6});
  ASSERT_TRUE(RunKernel("swiglu", {}, {&gate, &up}, {&y16}).ok());
  ASSERT_TRUE(RunKernel("swiglu", {}, {&gate32, &up32}, {&y32}).ok());
  for (int64_t i = 0; i < 24; ++i)
    EXPECT_EQ(y16.Data<uint16_t>()[i], FloatToBFloat16Bits(y32.Data<float>()[i])) << i;
  // Types must agree: bf16 in, bf16 out.
  OwnedTensor y_wrong(DType::kF32, {4, 6});
  EXPECT_EQ(RunKernel("swiglu", {}, {&gate, &up}, {&y_wrong}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKernel("swiglu", {}, {&gate, &up32}, {&y16}).code(),
            absl::StatusCode::kInvalidArgument);
}

// Attention by brute force: every (batch, key) pair is scored and masked
// explicitly, the kv head repeated for each query head group.
struct AttentionCase {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, value_dim;
  bool causal;
  std::vector<int64_t> cu_seqlens;
  double scale;
};

int64_t DocumentOf(const std::vector<int64_t>& cu, int64_t token) {
  for (size_t d = 0; d + 1 < cu.size(); ++d) {
    if (cu[d] <= token && token < cu[d + 1]) return static_cast<int64_t>(d);
  }
  return -1;
}

std::vector<double> NaiveAttention(const AttentionCase& c, const std::vector<float>& q,
                                   const std::vector<float>& k, const std::vector<float>& v) {
  std::vector<double> out(c.batch * c.q_heads * c.q_len * c.value_dim, 0.0);
  int64_t group = c.q_heads / c.kv_heads;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.q_heads; ++h) {
      int64_t g = h / group;
      for (int64_t i = 0; i < c.q_len; ++i) {
        std::vector<double> scores;
        std::vector<std::pair<int64_t, int64_t>> keys;
        for (int64_t b2 = 0; b2 < c.batch; ++b2) {
          for (int64_t j = 0; j < c.kv_len; ++j) {
            bool allowed;
            if (c.cu_seqlens.empty()) {
              allowed = b2 == b && (!c.causal || j <= i);
            } else {
              int64_t t = b * c.q_len + i, u = b2 * c.kv_len + j;
              int64_t doc = DocumentOf(c.cu_seqlens, t);
              allowed = doc >= 0 && doc == DocumentOf(c.cu_seqlens, u) && (!c.causal || u <= t);
            }
            if (!allowed) continue;
            double dot = 0;
            for (int64_t x = 0; x < c.head_dim; ++x) {
              dot += double(q[((b * c.q_heads + h) * c.q_len + i) * c.head_dim + x]) *
                     k[((b2 * c.kv_heads + g) * c.kv_len + j) * c.head_dim + x];
            }
            scores.push_back(c.scale * dot);
            keys.push_back({b2, j});
          }
        }
        if (scores.empty()) continue;
        double max = *std::max_element(scores.begin(), scores.end());
        double total = 0;
        for (double& s : scores) total += (s = std::exp(s - max));
        for (size_t n = 0; n < keys.size(); ++n) {
          auto [b2, j] = keys[n];
          for (int64_t x = 0; x < c.value_dim; ++x) {
            out[((b * c.q_heads + h) * c.q_len + i) * c.value_dim + x] +=
                scores[n] / total * v[((b2 * c.kv_heads + g) * c.kv_len + j) * c.value_dim + x];
          }
        }
      }
    }
  }
  return out;
}

void ExpectAttentionMatchesNaive(const AttentionCase& c, bool set_scale = true,
                                 bool cu_as_i32 = false) {
  std::mt19937 rng(10);
  OwnedTensor q = testing::RandomF32({c.batch, c.q_heads, c.q_len, c.head_dim}, rng, -2, 2);
  OwnedTensor k = testing::RandomF32({c.batch, c.kv_heads, c.kv_len, c.head_dim}, rng, -2, 2);
  OwnedTensor v = testing::RandomF32({c.batch, c.kv_heads, c.kv_len, c.value_dim}, rng);
  OwnedTensor out(DType::kF32, {c.batch, c.q_heads, c.q_len, c.value_dim});
  KernelAttrs attrs;
  if (set_scale) attrs.SetFloat("scale", c.scale);
  attrs.SetInt("causal", c.causal ? 1 : 0);
  std::vector<int32_t> cu32(c.cu_seqlens.begin(), c.cu_seqlens.end());
  OwnedTensor cu = cu_as_i32 ? I32({int64_t(cu32.size())}, cu32)
                             : I64({int64_t(c.cu_seqlens.size())}, c.cu_seqlens);
  std::vector<const OwnedTensor*> inputs = {&q, &k, &v};
  if (!c.cu_seqlens.empty()) inputs.push_back(&cu);
  absl::Status status = RunKernel("attention", attrs, inputs, {&out});
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(testing::AllClose(out.Values<float>(),
                                NaiveAttention(c, q.Values<float>(), k.Values<float>(),
                                               v.Values<float>()),
                                1e-6, 1e-5));
}

TEST(CpuModel, AttentionGqaNonCausalWithLongerKeys) {
  ExpectAttentionMatchesNaive({2, 4, 2, 3, 5, 4, 3, false, {}, 0.7});
}

TEST(CpuModel, AttentionGqaCausalWithDefaultScale) {
  ExpectAttentionMatchesNaive({2, 4, 2, 5, 5, 4, 4, true, {}, 0.5}, /*set_scale=*/false);
}

TEST(CpuModel, AttentionMultiQueryHeadSharing) {
  ExpectAttentionMatchesNaive({1, 4, 1, 4, 4, 8, 2, true, {}, 0.3});
}

TEST(CpuModel, AttentionPackedDocumentsCausalAndNot) {
  ExpectAttentionMatchesNaive({1, 4, 2, 8, 8, 4, 3, true, {0, 3, 8}, 0.5});
  ExpectAttentionMatchesNaive({1, 4, 2, 8, 8, 4, 3, false, {0, 3, 8}, 0.5}, true, true);
  // Two batch rows, documents aligned with rows and one split inside a row.
  ExpectAttentionMatchesNaive({2, 2, 2, 4, 4, 4, 4, true, {0, 1, 4, 8}, 0.5});
}

TEST(CpuModel, AttentionDocumentsSpanBatchRowsOfTheFlattenedTokenAxis) {
  // cu_seqlens index the flattened B * S axis, so a document may continue
  // from one batch row into the next.
  ExpectAttentionMatchesNaive({2, 2, 1, 4, 4, 4, 4, false, {0, 2, 6, 8}, 0.5});
  ExpectAttentionMatchesNaive({2, 2, 1, 4, 4, 4, 4, true, {0, 2, 6, 8}, 0.5});
}

TEST(CpuModel, AttentionQueryWithoutVisibleKeysGivesZeros) {
  // Tokens 3 and 4 are in no document.
  AttentionCase c{1, 2, 2, 5, 5, 4, 3, true, {0, 3}, 0.5};
  ExpectAttentionMatchesNaive(c);
  std::mt19937 rng(11);
  OwnedTensor q = testing::RandomF32({1, 2, 5, 4}, rng);
  OwnedTensor k = testing::RandomF32({1, 2, 5, 4}, rng);
  OwnedTensor v = testing::RandomF32({1, 2, 5, 3}, rng);
  OwnedTensor cu = I64({2}, {0, 3});
  OwnedTensor out(DType::kF32, {1, 2, 5, 3});
  std::vector<float> garbage(30, 99.0f);
  out.SetValues(garbage);
  ASSERT_TRUE(RunKernel("attention", {}, {&q, &k, &v, &cu}, {&out}).ok());
  for (int h = 0; h < 2; ++h) {
    for (int i = 3; i < 5; ++i) {
      for (int x = 0; x < 3; ++x) EXPECT_EQ(out.Values<float>()[(h * 5 + i) * 3 + x], 0.0f);
    }
  }
}

TEST(CpuModel, AttentionRejectsBadGeometry) {
  OwnedTensor q(DType::kF32, {1, 3, 4, 8});
  OwnedTensor k(DType::kF32, {1, 2, 4, 8});
  OwnedTensor v(DType::kF32, {1, 2, 4, 8});
  OwnedTensor out(DType::kF32, {1, 3, 4, 8});
  EXPECT_EQ(RunKernel("attention", {}, {&q, &k, &v}, {&out}).message(),
            "attention: 3 query heads are not a multiple of 2 kv heads");
  OwnedTensor q4(DType::kF32, {1, 4, 4, 8});
  OwnedTensor k_short(DType::kF32, {1, 2, 4, 6});
  OwnedTensor out4(DType::kF32, {1, 4, 4, 8});
  EXPECT_EQ(RunKernel("attention", {}, {&q4, &k_short, &v}, {&out4}).message(),
            "attention: k [1, 2, 4, 6] does not match q [1, 4, 4, 8] in batch (dim 0) and head "
            "dim (dim 3)");
  OwnedTensor bad_cu = I64({3}, {0, 3, 2});
  EXPECT_EQ(RunKernel("attention", {}, {&q4, &k, &v, &bad_cu}, {&out4}).message(),
            "attention: cu_seqlens[2] = 2 must be non-decreasing and within [0, 4] (B * S "
            "tokens)");
  OwnedTensor long_k(DType::kF32, {1, 2, 6, 8});
  OwnedTensor long_v(DType::kF32, {1, 2, 6, 8});
  OwnedTensor cu = I64({2}, {0, 4});
  EXPECT_EQ(RunKernel("attention", {}, {&q4, &long_k, &long_v, &cu}, {&out4}).message(),
            "attention: cu_seqlens needs equal query and key lengths, got 4 and 6");
  OwnedTensor wrong_out(DType::kF32, {1, 4, 4, 7});
  EXPECT_EQ(RunKernel("attention", {}, {&q4, &k, &v}, {&wrong_out}).message(),
            "attention: output has shape [1, 4, 4, 7], expected [1, 4, 4, 8]");
}

// Per-token loss logsumexp - logit[label], 0 for ignored tokens.
std::vector<double> NaiveTokenLosses(const std::vector<float>& logits,
                                     const std::vector<int64_t>& labels, int64_t vocab,
                                     int64_t ignore_index) {
  std::vector<double> losses;
  for (size_t r = 0; r < labels.size(); ++r) {
    if (labels[r] == ignore_index) {
      losses.push_back(0);
      continue;
    }
    double total = 0;
    for (int64_t c = 0; c < vocab; ++c) total += std::exp(double(logits[r * vocab + c]));
    losses.push_back(std::log(total) - logits[r * vocab + labels[r]]);
  }
  return losses;
}

TEST(CpuModel, CrossEntropyReductionsAndIgnoreIndex) {
  std::mt19937 rng(12);
  const int64_t vocab = 5;
  OwnedTensor logits = testing::RandomF32({2, 3, vocab}, rng, -3, 3);
  std::vector<int64_t> label_values = {1, -100, 4, 0, -100, 2};
  OwnedTensor labels = I64({2, 3}, label_values);
  std::vector<double> losses = NaiveTokenLosses(logits.Values<float>(), label_values, vocab, -100);
  double sum = 0;
  for (double loss : losses) sum += loss;

  OwnedTensor scalar(DType::kF32, {});
  ASSERT_TRUE(RunKernel("cross_entropy", {}, {&logits, &labels}, {&scalar}).ok());
  EXPECT_NEAR(scalar.Values<float>()[0], sum / 4, 1e-6);  // default: mean, ignore -100
  KernelAttrs sum_attrs;
  sum_attrs.SetInt("reduction", 1);
  sum_attrs.SetInt("ignore_index", -100);
  ASSERT_TRUE(RunKernel("cross_entropy", sum_attrs, {&logits, &labels}, {&scalar}).ok());
  EXPECT_NEAR(scalar.Values<float>()[0], sum, 1e-5);
  KernelAttrs none_attrs;
  none_attrs.SetInt("reduction", 2);
  OwnedTensor per_token(DType::kF32, {2, 3});
  ASSERT_TRUE(RunKernel("cross_entropy", none_attrs, {&logits, &labels}, {&per_token}).ok());
  EXPECT_TRUE(testing::AllClose(per_token.Values<float>(), losses, 1e-6, 1e-6));

  // A custom ignore_index, i32 labels: label 0 is ignored, -100 is now invalid.
  std::vector<int32_t> label32 = {1, 0, 4, 0, 3, 2};
  OwnedTensor labels32 = I32({2, 3}, label32);
  KernelAttrs custom;
  custom.SetInt("ignore_index", 0);
  ASSERT_TRUE(RunKernel("cross_entropy", custom, {&logits, &labels32}, {&scalar}).ok());
  std::vector<double> custom_losses = NaiveTokenLosses(
      logits.Values<float>(), std::vector<int64_t>(label32.begin(), label32.end()), vocab, 0);
  double custom_sum = 0;
  for (double loss : custom_losses) custom_sum += loss;
  EXPECT_NEAR(scalar.Values<float>()[0], custom_sum / 4, 1e-6);
}

TEST(CpuModel, CrossEntropyAllIgnoredMeanIsNan) {
  OwnedTensor logits = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  OwnedTensor labels = I64({2}, {-100, -100});
  OwnedTensor loss(DType::kF32, {});
  ASSERT_TRUE(RunKernel("cross_entropy", {}, {&logits, &labels}, {&loss}).ok());
  EXPECT_TRUE(std::isnan(loss.Values<float>()[0]));
  KernelAttrs sum;
  sum.SetInt("reduction", 1);
  ASSERT_TRUE(RunKernel("cross_entropy", sum, {&logits, &labels}, {&loss}).ok());
  EXPECT_EQ(loss.Values<float>()[0], 0.0f);
}

TEST(CpuModel, CrossEntropyRejectsBadLabelsAndShapes) {
  OwnedTensor logits(DType::kF32, {2, 5});
  OwnedTensor loss(DType::kF32, {});
  OwnedTensor too_big = I64({2}, {1, 7});
  absl::Status status = RunKernel("cross_entropy", {}, {&logits, &too_big}, {&loss});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(),
            "cross_entropy: label 7 at position 1 is outside [0, 5) and is not ignore_index -100");
  OwnedTensor negative = I64({2}, {-1, 0});
  EXPECT_EQ(RunKernel("cross_entropy", {}, {&logits, &negative}, {&loss}).code(),
            absl::StatusCode::kOutOfRange);
  OwnedTensor labels = I64({3}, {0, 1, 2});
  EXPECT_EQ(RunKernel("cross_entropy", {}, {&logits, &labels}, {&loss}).message(),
            "cross_entropy: labels has shape [3], expected [2]");
  OwnedTensor good = I64({2}, {0, 1});
  OwnedTensor vector_loss(DType::kF32, {1});
  EXPECT_EQ(RunKernel("cross_entropy", {}, {&logits, &good}, {&vector_loss}).message(),
            "cross_entropy: output has shape [1], expected []");
  KernelAttrs bad;
  bad.SetInt("reduction", 3);
  EXPECT_EQ(RunKernel("cross_entropy", bad, {&logits, &good}, {&loss}).message(),
            "cross_entropy: reduction 3 is not 0 (mean), 1 (sum) or 2 (none)");
}

}  // namespace
}  // namespace veomni::runtime
