// The CUDA LLM kernels, their gradients and adamw against their CPU twins on
// random operands of small realistic shapes, and the data errors the device
// reports for ids, labels and cu_seqlens the CPU would reject.
//
// Tolerance: the GPU computes in fp32 with fp32 block reductions, the CPU
// accumulates in double and rounds once. Over the rows here (up to 1000 terms
// of magnitude below 10) fp32 rounding stays far below atol 1e-5 + rtol 1e-4,
// while a wrong term (a mask, an index, a missing scale) is off by 1e-2 or
// more. Sums taken with fp32 atomics (dk, dv, dw, dtable, the summed loss) add
// few terms here, so they fit the same bound.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cuda/CudnnAttention.h"
#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"

namespace veomni::runtime {
namespace {

using testing::F32;
using testing::GpuTest;
using testing::I32;
using testing::I64;
using testing::OwnedTensor;
using testing::RandomF32;

constexpr double kAtol = 1e-5;
constexpr double kRtol = 1e-4;

// Runs `name` on both backends with outputs of `output_shapes` that start as
// stale values (every kernel must overwrite all of them) and expects the
// GPU's outputs close to the CPU's.
void ExpectMatchesCpu(const std::string& name, const KernelAttrs& attrs,
                      const std::vector<const OwnedTensor*>& inputs,
                      const std::vector<std::vector<int64_t>>& output_shapes, std::mt19937& rng,
                      double atol = kAtol, double rtol = kRtol) {
  std::vector<OwnedTensor> outputs;
  for (const std::vector<int64_t>& shape : output_shapes) {
    outputs.push_back(RandomF32(shape, rng, 50.0f, 60.0f));
  }
  std::vector<const OwnedTensor*> output_pointers;
  for (const OwnedTensor& output : outputs) output_pointers.push_back(&output);
  testing::TwinResult twins = testing::RunTwins(name, attrs, inputs, output_pointers);
  for (size_t i = 0; i < outputs.size(); ++i) {
    EXPECT_TRUE(testing::AllClose(twins.gpu[i].Values<float>(), twins.cpu[i].Values<float>(),
                                  atol, rtol))
        << name << " output " << i;
  }
}

OwnedTensor RandomIds(std::vector<int64_t> shape, int64_t vocab, std::mt19937& rng,
                      bool as_i32 = false) {
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> ids(static_cast<size_t>(testing::NumElementsOf(shape)));
  for (int64_t& id : ids) id = pick(rng);
  if (!as_i32) return I64(std::move(shape), ids);
  return I32(std::move(shape), std::vector<int32_t>(ids.begin(), ids.end()));
}

// Labels in [0, vocab) with about one in four set to `ignore_index`.
OwnedTensor RandomLabels(std::vector<int64_t> shape, int64_t vocab, int64_t ignore_index,
                         std::mt19937& rng, bool as_i32) {
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> labels(static_cast<size_t>(testing::NumElementsOf(shape)));
  for (size_t r = 0; r < labels.size(); ++r) labels[r] = r % 4 == 1 ? ignore_index : pick(rng);
  if (!as_i32) return I64(std::move(shape), labels);
  return I32(std::move(shape), std::vector<int32_t>(labels.begin(), labels.end()));
}

TEST_F(GpuTest, EmbeddingMatchesCpu) {
  std::mt19937 rng(1);
  OwnedTensor table = RandomF32({1000, 64}, rng);
  for (bool as_i32 : {false, true}) {
    OwnedTensor ids = RandomIds({2, 17}, 1000, rng, as_i32);
    // A copy: exact.
    ExpectMatchesCpu("embedding", {}, {&table, &ids}, {{2, 17, 64}}, rng, 0.0, 0.0);
  }
}

TEST_F(GpuTest, EmbeddingGradMatchesCpu) {
  std::mt19937 rng(2);
  // A vocabulary of 50 for 34 tokens repeats ids, so rows accumulate.
  for (int64_t vocab : {50, 1000}) {
    OwnedTensor ids = RandomIds({2, 17}, vocab, rng, vocab == 50);
    OwnedTensor dy = RandomF32({2, 17, 64}, rng);
    ExpectMatchesCpu("embedding_grad", {}, {&ids, &dy}, {{vocab, 64}}, rng);
  }
}

TEST_F(GpuTest, RmsNormMatchesCpu) {
  std::mt19937 rng(3);
  KernelAttrs attrs;
  attrs.SetFloat("epsilon", 1e-6);
  // Rows shorter than, and longer than, a block of 256 threads.
  for (std::vector<int64_t> shape : {std::vector<int64_t>{2, 13, 96},
                                     std::vector<int64_t>{3, 1000}, std::vector<int64_t>{5, 7}}) {
    OwnedTensor x = RandomF32(shape, rng, -2.0f, 2.0f);
    OwnedTensor w = RandomF32({shape.back()}, rng, 0.5f, 1.5f);
    ExpectMatchesCpu("rms_norm", attrs, {&x, &w}, {shape}, rng);
    OwnedTensor dy = RandomF32(shape, rng);
    ExpectMatchesCpu("rms_norm_grad", attrs, {&x, &w, &dy}, {shape, {shape.back()}}, rng);
  }
  // Rows of up to 512 take a warp each: both sides of that bound, and more
  // rows than the gradient's grid has warps (each warp then takes several).
  // dw sums 9000 rows in float (lanes, then warps, then blocks): its
  // rounding grows like sqrt(terms) * 6e-8 of the O(50) sum, ~2e-4, hence
  // atol 1e-3 there; a lost or doubled row (O(1)) still fails.
  for (auto [shape, atol] : {std::pair<std::vector<int64_t>, double>{{3, 512}, kAtol},
                             {{3, 513}, kAtol},
                             {{9000, 128}, 1e-3}}) {
    OwnedTensor x = RandomF32(shape, rng, -2.0f, 2.0f);
    OwnedTensor w = RandomF32({shape.back()}, rng, 0.5f, 1.5f);
    ExpectMatchesCpu("rms_norm", attrs, {&x, &w}, {shape}, rng);
    OwnedTensor dy = RandomF32(shape, rng);
    ExpectMatchesCpu("rms_norm_grad", attrs, {&x, &w, &dy}, {shape, {shape.back()}}, rng, atol);
  }
}

TEST_F(GpuTest, RopeMatchesCpu) {
  std::mt19937 rng(4);
  struct RopeCase {
    std::vector<int64_t> x, cos, sin;
  };
  // cos and sin as [S, D], as [B, 1, S, D], sin of another shape than cos,
  // and x [1, S, H, D] (a dim of 1, heads inside) with cos and sin repeated
  // over the heads.
  const RopeCase cases[] = {{{2, 4, 9, 16}, {9, 16}, {9, 16}},
                            {{2, 4, 9, 16}, {2, 1, 9, 16}, {2, 1, 9, 16}},
                            {{2, 4, 9, 16}, {9, 16}, {4, 1, 16}},
                            {{1, 9, 4, 16}, {9, 1, 16}, {1, 9, 1, 16}}};
  for (const RopeCase& c : cases) {
    OwnedTensor x = RandomF32(c.x, rng);
    OwnedTensor cos = RandomF32(c.cos, rng);
    OwnedTensor sin = RandomF32(c.sin, rng);
    ExpectMatchesCpu("rope", {}, {&x, &cos, &sin}, {c.x}, rng);
    ExpectMatchesCpu("rope_grad", {}, {&x, &cos, &sin}, {c.x}, rng);
  }
}

TEST_F(GpuTest, SwigluMatchesCpu) {
  std::mt19937 rng(5);
  std::vector<int64_t> shape = {2, 11, 40};
  OwnedTensor gate = RandomF32(shape, rng, -6.0f, 6.0f);
  OwnedTensor up = RandomF32(shape, rng, -2.0f, 2.0f);
  ExpectMatchesCpu("swiglu", {}, {&gate, &up}, {shape}, rng);
  OwnedTensor dy = RandomF32(shape, rng);
  ExpectMatchesCpu("swiglu_grad", {}, {&gate, &up, &dy}, {shape, shape}, rng);

  // bf16 gate and up (vo-bf16-matmuls): swiglu's bf16 output may round the
  // other way by one bf16 step (2^-8 relative) where f32 expf and the CPU's
  // double exp straddle a rounding boundary; the gradients stay f32.
  OwnedTensor gate16 = testing::RoundedToBf16(gate), up16 = testing::RoundedToBf16(up);
  OwnedTensor y16(DType::kBF16, shape);
  testing::TwinResult twins = testing::RunTwins("swiglu", {}, {&gate16, &up16}, {&y16});
  EXPECT_TRUE(testing::AllClose(testing::WidenedBf16(twins.gpu[0]),
                                testing::WidenedBf16(twins.cpu[0]), 1e-6, 8e-3));
  ExpectMatchesCpu("swiglu_grad", {}, {&gate16, &up16, &dy}, {shape, shape}, rng);
}

struct AttentionCase {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, value_dim;
  bool causal;
  std::vector<int64_t> cu_seqlens;  // empty: none
  bool cu_as_i32 = false;
  double scale = 0.0;  // 0: the default 1/sqrt(D)
};

std::vector<AttentionCase> AttentionCases() {
  return {
      {2, 4, 2, 5, 5, 8, 8, true, {}},
      {2, 4, 2, 33, 33, 64, 64, false, {}},
      // Fewer keys than queries, Dv != D, one kv head per query head.
      {2, 4, 4, 33, 20, 16, 24, true, {}},
      {2, 4, 4, 20, 33, 16, 24, false, {}},
      // More keys than one tile of 64.
      {2, 4, 2, 70, 70, 32, 32, true, {}},
      // Two documents; the second runs across the batch boundary at 33.
      {2, 4, 2, 33, 33, 16, 16, true, {0, 20, 66}},
      // Tokens 0..2 and 60..65 are in no document and see nothing.
      {2, 4, 2, 33, 33, 16, 16, false, {3, 40, 60}, true, 0.3},
      {1, 2, 1, 130, 130, 8, 8, false, {0, 50, 130}, true},
  };
}

KernelAttrs AttentionAttrs(const AttentionCase& c) {
  KernelAttrs attrs;
  attrs.SetInt("causal", c.causal ? 1 : 0);
  if (c.scale != 0.0) attrs.SetFloat("scale", c.scale);
  return attrs;
}

OwnedTensor CuSeqlens(const AttentionCase& c) {
  if (!c.cu_as_i32) return I64({static_cast<int64_t>(c.cu_seqlens.size())}, c.cu_seqlens);
  return I32({static_cast<int64_t>(c.cu_seqlens.size())},
             std::vector<int32_t>(c.cu_seqlens.begin(), c.cu_seqlens.end()));
}

// The f32 reference kernel: what fp32 and tf32 runs and documents
// (cu_seqlens) get.
TEST_F(GpuTest, AttentionMatchesCpu) {
  testing::ScopedPrecision f32(cuda::MatmulPrecision::kF32);
  std::mt19937 rng(6);
  for (const AttentionCase& c : AttentionCases()) {
    SCOPED_TRACE(::testing::Message() << "S " << c.q_len << ", Sk " << c.kv_len << ", D "
                                      << c.head_dim << ", causal " << c.causal
                                      << ", documents " << c.cu_seqlens.size());
    OwnedTensor q = RandomF32({c.batch, c.q_heads, c.q_len, c.head_dim}, rng);
    OwnedTensor k = RandomF32({c.batch, c.kv_heads, c.kv_len, c.head_dim}, rng);
    OwnedTensor v = RandomF32({c.batch, c.kv_heads, c.kv_len, c.value_dim}, rng);
    OwnedTensor cu = CuSeqlens(c);
    std::vector<const OwnedTensor*> inputs = {&q, &k, &v};
    if (!c.cu_seqlens.empty()) inputs.push_back(&cu);
    ExpectMatchesCpu("attention", AttentionAttrs(c), inputs,
                     {{c.batch, c.q_heads, c.q_len, c.value_dim}}, rng);
  }
}

TEST_F(GpuTest, AttentionGradMatchesCpu) {
  testing::ScopedPrecision f32(cuda::MatmulPrecision::kF32);
  std::mt19937 rng(7);
  for (const AttentionCase& c : AttentionCases()) {
    SCOPED_TRACE(::testing::Message() << "S " << c.q_len << ", Sk " << c.kv_len << ", D "
                                      << c.head_dim << ", causal " << c.causal
                                      << ", documents " << c.cu_seqlens.size());
    OwnedTensor q = RandomF32({c.batch, c.q_heads, c.q_len, c.head_dim}, rng);
    OwnedTensor k = RandomF32({c.batch, c.kv_heads, c.kv_len, c.head_dim}, rng);
    OwnedTensor v = RandomF32({c.batch, c.kv_heads, c.kv_len, c.value_dim}, rng);
    OwnedTensor dout = RandomF32({c.batch, c.q_heads, c.q_len, c.value_dim}, rng);
    OwnedTensor cu = CuSeqlens(c);
    std::vector<const OwnedTensor*> inputs = {&q, &k, &v, &dout};
    if (!c.cu_seqlens.empty()) inputs.push_back(&cu);
    ExpectMatchesCpu("attention_grad", AttentionAttrs(c), inputs,
                     {q.shape(), k.shape(), v.shape()}, rng);
  }
}

// cuDNN's fused attention (bf16 compute, the training default) against the
// CPU's f64-accumulated reference. Tolerance: q, k, v, dout and the softmax
// probabilities are rounded to bf16 (relative 2^-9 each); over these rows the
// outputs (|out| < 1) stay within 2e-2 and the gradients within 4e-2 + 2e-2|x|,
// while a wrong mask, scale or head mapping is off by 0.1 or more.
std::vector<AttentionCase> CudnnAttentionCases() {
  return {
      {2, 4, 2, 5, 5, 8, 8, true, {}},
      {2, 4, 2, 33, 33, 64, 64, false, {}},
      {2, 4, 4, 33, 20, 16, 16, true, {}},
      {2, 4, 1, 70, 70, 32, 32, true, {}, false, 0.3},
      // Qwen3's head dim.
      {1, 4, 2, 130, 130, 128, 128, true, {}},
  };
}

TEST_F(GpuTest, CudnnAttentionMatchesCpu) {
  testing::ScopedPrecision bf16(cuda::MatmulPrecision::kBF16);
  std::mt19937 rng(16);
  for (const AttentionCase& c : CudnnAttentionCases()) {
    SCOPED_TRACE(::testing::Message() << "Hq " << c.q_heads << ", Hkv " << c.kv_heads << ", S "
                                      << c.q_len << ", Sk " << c.kv_len << ", D " << c.head_dim
                                      << ", causal " << c.causal);
    OwnedTensor q = RandomF32({c.batch, c.q_heads, c.q_len, c.head_dim}, rng);
    OwnedTensor k = RandomF32({c.batch, c.kv_heads, c.kv_len, c.head_dim}, rng);
    OwnedTensor v = RandomF32({c.batch, c.kv_heads, c.kv_len, c.value_dim}, rng);
    auto geometry = cpu::PlanAttentionShapes("attention", AttentionAttrs(c),
                                             {q.View(), k.View(), v.View()});
    ASSERT_TRUE(geometry.ok()) << geometry.status();
    EXPECT_TRUE(cuda::CudnnAttentionApplies(*geometry, false, *cuda::CurrentCudaContext()));
    ExpectMatchesCpu("attention", AttentionAttrs(c), {&q, &k, &v},
                     {{c.batch, c.q_heads, c.q_len, c.value_dim}}, rng, 2e-2, 0.0);
    OwnedTensor dout = RandomF32({c.batch, c.q_heads, c.q_len, c.value_dim}, rng);
    ExpectMatchesCpu("attention_grad", AttentionAttrs(c), {&q, &k, &v, &dout},
                     {q.shape(), k.shape(), v.shape()}, rng, 4e-2, 2e-2);
  }
}

TEST_F(GpuTest, CudnnAttentionLeavesOtherCasesToTheReferenceKernel) {
  cpu::AttentionGeometry geometry;
  geometry.head_dim = geometry.value_dim = 128;
  cuda::CudaContext context;
  context.matmul_precision = cuda::MatmulPrecision::kBF16;
  EXPECT_TRUE(cuda::CudnnAttentionApplies(geometry, false, context));
  EXPECT_FALSE(cuda::CudnnAttentionApplies(geometry, /*has_cu_seqlens=*/true, context));
  context.matmul_precision = cuda::MatmulPrecision::kTF32;
  EXPECT_FALSE(cuda::CudnnAttentionApplies(geometry, false, context));
  context.matmul_precision = cuda::MatmulPrecision::kBF16;
  geometry.value_dim = 64;
  EXPECT_FALSE(cuda::CudnnAttentionApplies(geometry, false, context));
  geometry.head_dim = geometry.value_dim = 12;
  EXPECT_FALSE(cuda::CudnnAttentionApplies(geometry, false, context));
}

struct CrossEntropyCase {
  int64_t reduction;
  int64_t ignore_index;
  bool labels_as_i32;
  bool all_ignored;
};

TEST_F(GpuTest, CrossEntropyMatchesCpu) {
  std::mt19937 rng(8);
  const int64_t vocab = 1000;
  std::vector<int64_t> row_shape = {2, 7};
  OwnedTensor logits = RandomF32({2, 7, vocab}, rng, -3.0f, 3.0f);
  for (CrossEntropyCase c : {CrossEntropyCase{0, -100, false, false},
                             CrossEntropyCase{1, -100, true, false},
                             CrossEntropyCase{2, -100, false, false},
                             CrossEntropyCase{0, 5, true, false},
                             // mean over no counted token is NaN, sum is 0
                             CrossEntropyCase{0, -100, false, true},
                             CrossEntropyCase{1, -100, false, true}}) {
    SCOPED_TRACE(::testing::Message() << "reduction " << c.reduction << ", ignore_index "
                                      << c.ignore_index << ", all ignored " << c.all_ignored);
    KernelAttrs attrs;
    attrs.SetInt("reduction", c.reduction);
    if (c.ignore_index != -100) attrs.SetInt("ignore_index", c.ignore_index);
    OwnedTensor labels =
        c.all_ignored ? I64(row_shape, std::vector<int64_t>(14, c.ignore_index))
                      : RandomLabels(row_shape, vocab, c.ignore_index, rng, c.labels_as_i32);
    bool per_token = c.reduction == 2;
    std::vector<int64_t> loss_shape = per_token ? row_shape : std::vector<int64_t>{};
    ExpectMatchesCpu("cross_entropy", attrs, {&logits, &labels}, {loss_shape}, rng);
    OwnedTensor dloss = RandomF32(loss_shape, rng, 0.5f, 2.0f);
    ExpectMatchesCpu("cross_entropy_grad", attrs, {&logits, &labels, &dloss},
                     {logits.shape()}, rng);
    // The bf16 gradient (vo-bf16-matmuls): the f32 values rounded, so the
    // backends agree within one bf16 step where their f32 values straddle
    // a rounding boundary.
    OwnedTensor stale = testing::RoundedToBf16(RandomF32(logits.shape(), rng, 50.0f, 60.0f));
    testing::TwinResult twins =
        testing::RunTwins("cross_entropy_grad", attrs, {&logits, &labels, &dloss}, {&stale});
    EXPECT_TRUE(testing::AllClose(testing::WidenedBf16(twins.gpu[0]),
                                  testing::WidenedBf16(twins.cpu[0]), kAtol, 1.0 / 128));
  }
}

// Rows with special values, against the CPU's LogSumExp: -inf entries add
// nothing, a row of them or with a +inf has that max as its log-sum-exp, a
// NaN propagates; and rows long enough (2000) that each thread's running max
// rises several times.
TEST_F(GpuTest, CrossEntropySpecialValuesMatchCpu) {
  std::mt19937 rng(41);
  const int64_t vocab = 2000;
  OwnedTensor logits = RandomF32({5, vocab}, rng, -30.0f, 30.0f);
  float* x = logits.Data<float>();
  for (int64_t c = 0; c < vocab; c += 3) x[0 * vocab + c] = -INFINITY;  // some -inf
  for (int64_t c = 0; c < vocab; ++c) x[1 * vocab + c] = -INFINITY;     // all -inf
  x[2 * vocab + 77] = INFINITY;                                         // a +inf
  x[3 * vocab + 1500] = NAN;                                            // a NaN
  for (int64_t c = 0; c < vocab; ++c) x[4 * vocab + c] = 0.01f * c;    // rising max
  OwnedTensor labels = I64({5}, {1, 2, 3, 4, 1999});
  KernelAttrs attrs;
  attrs.SetInt("reduction", 2);  // per row
  ExpectMatchesCpu("cross_entropy", attrs, {&logits, &labels}, {{5}}, rng);
  OwnedTensor dloss = F32({5}, {1.0f, 1.0f, 1.0f, 1.0f, 1.0f});
  ExpectMatchesCpu("cross_entropy_grad", attrs, {&logits, &labels, &dloss}, {{5, vocab}}, rng);
  // Rows shorter than the block: most threads see no element.
  OwnedTensor short_rows = RandomF32({3, 100}, rng, -30.0f, 30.0f);
  short_rows.Data<float>()[1 * 100 + 7] = -INFINITY;
  OwnedTensor short_labels = I64({3}, {0, 50, 99});
  ExpectMatchesCpu("cross_entropy", attrs, {&short_rows, &short_labels}, {{3}}, rng);
  OwnedTensor short_dloss = F32({3}, {1.0f, 0.5f, 2.0f});
  ExpectMatchesCpu("cross_entropy_grad", attrs, {&short_rows, &short_labels, &short_dloss},
                   {{3, 100}}, rng);
}

// Data the CPU kernels reject on the host is flagged on the device and
// reported by the synchronization that follows; the flag is then clear.
TEST_F(GpuTest, BadDataIsReportedAtSynchronization) {
  OwnedTensor table(DType::kF32, {256, 4});
  OwnedTensor out(DType::kF32, {3, 4});
  OwnedTensor bad_ids = I64({3}, {1, 300, 2});
  absl::Status status = testing::RunCudaKernel("embedding", {}, {&table, &bad_ids}, {&out});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("token id"), absl::string_view::npos) << status;
  OwnedTensor negative_ids = I32({3}, {0, -1, 2});
  OwnedTensor dtable(DType::kF32, {256, 4});
  OwnedTensor dy(DType::kF32, {3, 4});
  status = testing::RunCudaKernel("embedding_grad", {}, {&negative_ids, &dy}, {&dtable});
  EXPECT_NE(status.message().find("token id"), absl::string_view::npos) << status;
  OwnedTensor good_ids = I64({3}, {1, 255, 2});
  EXPECT_TRUE(testing::RunCudaKernel("embedding", {}, {&table, &good_ids}, {&out}).ok());

  OwnedTensor logits(DType::kF32, {2, 8});
  OwnedTensor labels = I64({2}, {3, 8});
  OwnedTensor loss(DType::kF32, {});
  status = testing::RunCudaKernel("cross_entropy", {}, {&logits, &labels}, {&loss});
  EXPECT_NE(status.message().find("label"), absl::string_view::npos) << status;

  OwnedTensor q(DType::kF32, {1, 1, 4, 2});
  OwnedTensor o(DType::kF32, {1, 1, 4, 2});
  OwnedTensor decreasing = I64({3}, {0, 3, 2});
  status = testing::RunCudaKernel("attention", {}, {&q, &q, &q, &decreasing}, {&o});
  EXPECT_NE(status.message().find("cu_seqlens"), absl::string_view::npos) << status;
  OwnedTensor past_end = I32({2}, {0, 5});
  status = testing::RunCudaKernel("attention", {}, {&q, &q, &q, &past_end}, {&o});
  EXPECT_NE(status.message().find("cu_seqlens"), absl::string_view::npos) << status;
}

struct AdamWConfig {
  double lr, beta1, beta2, eps, weight_decay;
};

// Three steps on each backend from the same state and gradients. Both take the
// same correctly rounded f32 operations in the same order, so they should
// agree bit for bit; a few ulps of slack cover a CPU build that contracts a
// multiply-add the CPU kernel does not spell as std::fma.
TEST_F(GpuTest, AdamWMatchesCpuOverThreeSteps) {
  // Not a multiple of the block size; the second size takes more blocks than
  // the summing launch allows (grid-stride), and the other branch of torch's
  // lerp (beta1 < 0.5).
  for (auto [n, config] : {std::pair{int64_t{10007}, AdamWConfig{1e-3, 0.9, 0.95, 1e-8, 0.1}},
                           std::pair{int64_t{4200007}, AdamWConfig{1e-2, 0.3, 0.999, 1e-6, 0.0}}}) {
    std::mt19937 rng(9);
    KernelAttrs attrs;
    attrs.SetFloat("beta1", config.beta1);
    attrs.SetFloat("beta2", config.beta2);
    attrs.SetFloat("eps", config.eps);
    attrs.SetFloat("weight_decay", config.weight_decay);
    OwnedTensor param = RandomF32({n}, rng);
    OwnedTensor zeros(DType::kF32, {n});
    // state[0] is the CPU's, state[1] the GPU's: {param, exp_avg, exp_avg_sq}.
    std::vector<std::vector<OwnedTensor>> state(2, {param, zeros, zeros});
    OwnedTensor grad_scale = F32({}, {0.5f});
    std::vector<OwnedTensor> sums(2, OwnedTensor(DType::kF32, {}));
    std::vector<OwnedTensor> copies(2, OwnedTensor(DType::kBF16, {n}));
    for (int step = 1; step <= 3; ++step) {
      OwnedTensor grad = RandomF32({n}, rng, -2.0f, 2.0f);
      OwnedTensor hyper = F32({3}, {static_cast<float>(config.lr),
                                    static_cast<float>(1.0 - std::pow(config.beta1, step)),
                                    static_cast<float>(1.0 - std::pow(config.beta2, step))});
      for (int backend = 0; backend < 2; ++backend) {
        std::vector<OwnedTensor>& s = state[backend];
        std::vector<OwnedTensor> next(3, zeros);
        std::vector<const OwnedTensor*> inputs = {&s[0], &grad, &s[1], &s[2], &hyper,
                                                  &grad_scale};
        std::vector<OwnedTensor*> outputs = {&next[0], &next[1], &next[2]};
        // Steps 2 and 3 also sum grad^2 (vo.adamw sum_squares); step 3 also
        // writes the bf16 copy of the parameter (vo-keep-bf16-params).
        if (step > 1) outputs.push_back(&sums[backend]);
        if (step == 3) outputs.push_back(&copies[backend]);
        absl::Status status = backend == 0
                                  ? testing::RunKernel("adamw", attrs, inputs, outputs)
                                  : testing::RunCudaKernel("adamw", attrs, inputs, outputs);
        ASSERT_TRUE(status.ok()) << (backend == 0 ? "CPU: " : "GPU: ") << status;
        s = std::move(next);
      }
      if (step > 1) {
        EXPECT_NEAR(sums[1].Values<float>()[0], sums[0].Values<float>()[0],
                    1e-6 * sums[0].Values<float>()[0])
            << "sum of squares, step " << step;
      }
    }
    const char* names[] = {"param", "exp_avg", "exp_avg_sq"};
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(testing::AllClose(state[1][i].Values<float>(), state[0][i].Values<float>(),
                                    1e-12, 1e-6))
          << names[i];
    }
    // Each backend's copy is its own updated parameter, rounded.
    for (int backend = 0; backend < 2; ++backend) {
      EXPECT_EQ(testing::WidenedBf16(copies[backend]),
                testing::WidenedBf16(testing::RoundedToBf16(state[backend][0])))
          << (backend == 0 ? "CPU" : "GPU") << " bf16 copy";
    }
  }
}

}  // namespace
}  // namespace veomni::runtime
