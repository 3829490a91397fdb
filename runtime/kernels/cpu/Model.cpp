// The LLM ops the compiler raises exporters' patterns into: embedding,
// rms_norm, rope, swiglu, attention (GQA, causal, packed documents) and
// cross_entropy. f32 only; sums and dot products accumulate in double.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ModelCommon.h"

namespace veomni::runtime::cpu {

int64_t ReadIndex(const TensorView& indices, int64_t index) {
  if (indices.dtype == DType::kI32) return indices.As<int32_t>()[index];
  return indices.As<int64_t>()[index];
}

absl::Status CheckTokenIdsDType(absl::string_view kernel, const TensorView& ids) {
  if (ids.dtype != DType::kI64 && ids.dtype != DType::kI32) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ids have dtype ",
                                                   DTypeName(ids.dtype),
                                                   ", expected i64 or i32"));
  }
  return absl::OkStatus();
}

absl::Status CheckTokenIds(absl::string_view kernel, const TensorView& ids, int64_t vocab) {
  VEOMNI_RETURN_IF_ERROR(CheckTokenIdsDType(kernel, ids));
  for (int64_t i = 0; i < ids.NumElements(); ++i) {
    int64_t id = ReadIndex(ids, i);
    if (id < 0 || id >= vocab) {
      return absl::OutOfRangeError(absl::StrCat(kernel, ": token id ", id,
                                                " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

std::pair<int64_t, int64_t> AttentionGeometry::VisibleKeys(int64_t b, int64_t i) const {
  if (cu_seqlens.empty()) {
    int64_t end = causal ? std::min(i + 1, kv_len) : kv_len;
    return {b * kv_len, b * kv_len + end};
  }
  // Tokens outside every document (before cu_seqlens[0] or from the last
  // offset on) see nothing.
  int64_t token = b * q_len + i;
  auto after = std::upper_bound(cu_seqlens.begin(), cu_seqlens.end(), token);
  if (after == cu_seqlens.begin() || after == cu_seqlens.end()) return {0, 0};
  int64_t begin = *(after - 1);
  int64_t end = causal ? token + 1 : *after;
  return {begin, end};
}

absl::StatusOr<AttentionGeometry> PlanAttentionShapes(absl::string_view kernel,
                                                      const KernelAttrs& attrs,
                                                      absl::Span<const TensorView> inputs) {
  const TensorView& q = inputs[0];
  const TensorView& k = inputs[1];
  const TensorView& v = inputs[2];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, q.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "k", k, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "v", v, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "q", q, 4));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "k", k, 4));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "v", v, 4));
  AttentionGeometry geometry;
  geometry.batch = q.shape[0];
  geometry.q_heads = q.shape[1];
  geometry.q_len = q.shape[2];
  geometry.head_dim = q.shape[3];
  geometry.kv_heads = k.shape[1];
  geometry.kv_len = k.shape[2];
  geometry.value_dim = v.shape[3];
  if (k.shape[0] != geometry.batch || k.shape[3] != geometry.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, ": k ", FormatShape(k.shape), " does not match q ", FormatShape(q.shape),
        " in batch (dim 0) and head dim (dim 3)"));
  }
  if (v.shape[0] != geometry.batch || v.shape[1] != geometry.kv_heads ||
      v.shape[2] != geometry.kv_len) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": v ", FormatShape(v.shape),
                                                   " does not match k ", FormatShape(k.shape),
                                                   " in dims 0 to 2"));
  }
  if (geometry.kv_heads == 0 || geometry.q_heads % geometry.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", geometry.q_heads,
                                                   " query heads are not a multiple of ",
                                                   geometry.kv_heads, " kv heads"));
  }
  VEOMNI_ASSIGN_OR_RETURN(geometry.causal, OptionalFlag(kernel, attrs, "causal", false));
  double default_scale =
      geometry.head_dim > 0 ? 1.0 / std::sqrt(static_cast<double>(geometry.head_dim)) : 1.0;
  VEOMNI_ASSIGN_OR_RETURN(geometry.scale, OptionalFloat(kernel, attrs, "scale", default_scale));

  if (inputs.size() == 4) {
    const TensorView& cu = inputs[3];
    if (cu.dtype != DType::kI64 && cu.dtype != DType::kI32) {
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, ": cu_seqlens has dtype ", DTypeName(cu.dtype), ", expected i32 or i64"));
    }
    if (cu.shape.size() != 1 || cu.shape[0] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(kernel, ": cu_seqlens has shape ",
                                                     FormatShape(cu.shape),
                                                     ", expected [N + 1] with N >= 0"));
    }
    if (geometry.q_len != geometry.kv_len) {
      return absl::InvalidArgumentError(
          absl::StrCat(kernel, ": cu_seqlens needs equal query and key lengths, got ",
                       geometry.q_len, " and ", geometry.kv_len));
    }
    geometry.num_offsets = cu.shape[0];
  }
  return geometry;
}

absl::StatusOr<AttentionGeometry> PlanAttention(absl::string_view kernel,
                                                const KernelAttrs& attrs,
                                                absl::Span<const TensorView> inputs) {
  VEOMNI_ASSIGN_OR_RETURN(AttentionGeometry geometry,
                          PlanAttentionShapes(kernel, attrs, inputs));
  int64_t tokens = geometry.batch * geometry.q_len;
  for (int64_t d = 0; d < geometry.num_offsets; ++d) {
    int64_t offset = ReadIndex(inputs[3], d);
    int64_t previous = d == 0 ? 0 : geometry.cu_seqlens.back();
    if (offset < previous || offset > tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, ": cu_seqlens[", d, "] = ", offset,
          " must be non-decreasing and within [0, ", tokens, "] (B * S tokens)"));
    }
    geometry.cu_seqlens.push_back(offset);
  }
  return geometry;
}

absl::StatusOr<CrossEntropyPlan> PlanCrossEntropyShapes(absl::string_view kernel,
                                                        const KernelAttrs& attrs,
                                                        const TensorView& logits,
                                                        const TensorView& labels) {
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, logits.dtype, {DType::kF32}));
  if (labels.dtype != DType::kI64 && labels.dtype != DType::kI32) {
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, ": labels have dtype ", DTypeName(labels.dtype), ", expected i64 or i32"));
  }
  if (logits.shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": logits must have a vocabulary dim, got shape []"));
  }
  std::vector<int64_t> row_shape(logits.shape.begin(), logits.shape.end() - 1);
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "labels", labels, row_shape));
  VEOMNI_ASSIGN_OR_RETURN(int64_t ignore_index,
                          OptionalInt(kernel, attrs, "ignore_index", -100));
  VEOMNI_ASSIGN_OR_RETURN(int64_t reduction, OptionalInt(kernel, attrs, "reduction", 0));
  if (reduction < 0 || reduction > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, ": reduction ", reduction, " is not 0 (mean), 1 (sum) or 2 (none)"));
  }
  CrossEntropyPlan plan;
  plan.vocab = logits.shape.back();
  plan.rows = labels.NumElements();
  plan.reduction = static_cast<LossReduction>(reduction);
  plan.ignore_index = ignore_index;
  return plan;
}

absl::StatusOr<CrossEntropyPlan> PlanCrossEntropy(absl::string_view kernel,
                                                  const KernelAttrs& attrs,
                                                  const TensorView& logits,
                                                  const TensorView& labels) {
  VEOMNI_ASSIGN_OR_RETURN(CrossEntropyPlan plan,
                          PlanCrossEntropyShapes(kernel, attrs, logits, labels));
  for (int64_t r = 0; r < plan.rows; ++r) {
    int64_t label = ReadIndex(labels, r);
    bool ignored = label == plan.ignore_index;
    if (!ignored && (label < 0 || label >= plan.vocab)) {
      return absl::OutOfRangeError(absl::StrCat(kernel, ": label ", label, " at position ", r,
                                                " is outside [0, ", plan.vocab,
                                                ") and is not ignore_index ",
                                                plan.ignore_index));
    }
    plan.labels.push_back(label);
    plan.ignored.push_back(ignored);
    if (!ignored) ++plan.counted;
  }
  return plan;
}

double LogSumExp(const float* row, int64_t count) {
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    if (std::isnan(row[j]) || row[j] > max) max = row[j];
  }
  if (std::isinf(max)) return max;  // all -inf (or an +inf): avoid inf - inf
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j) sum += std::exp(row[j] - max);
  return max + std::log(sum);
}

// embedding(table [V, H], ids [...] i64/i32) -> [..., H]. Rows are copied as
// bytes, so the table may have any dtype.
absl::Status Embedding(const KernelAttrs&, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "embedding";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& table = inputs[0];
  const TensorView& ids = inputs[1];
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckRank(kKernel, "table", table, 2));
  int64_t vocab = table.shape[0];
  int64_t hidden = table.shape[1];
  std::vector<int64_t> expected = ids.shape;
  expected.push_back(hidden);
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, table.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", out, expected));
  VEOMNI_RETURN_IF_ERROR(CheckTokenIds(kKernel, ids, vocab));
  int64_t row_bytes = hidden * DTypeBytes(table.dtype);
  if (row_bytes == 0) return absl::OkStatus();
  for (int64_t t = 0; t < ids.NumElements(); ++t) {
    std::memcpy(static_cast<char*>(out.data) + t * row_bytes,
                static_cast<const char*>(table.data) + ReadIndex(ids, t) * row_bytes, row_bytes);
  }
  return absl::OkStatus();
}

// rms_norm(x [..., D], w [D]) {epsilon}: x / sqrt(mean(x^2) + eps) * w.
absl::Status RmsNorm(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, CheckRmsNorm(attrs, inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& y = outputs[0];
  int64_t dim = x.shape.back();
  if (dim == 0) return absl::OkStatus();
  int64_t rows = x.NumElements() / dim;
  const float* xs = x.As<float>();
  const float* ws = w.As<float>();
  float* ys = y.As<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xs + r * dim;
    double sum_squares = 0.0;
    for (int64_t j = 0; j < dim; ++j) sum_squares += static_cast<double>(row[j]) * row[j];
    double inv_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + epsilon);
    for (int64_t j = 0; j < dim; ++j) {
      ys[r * dim + j] = static_cast<float>(row[j] * inv_rms * ws[j]);
    }
  }
  return absl::OkStatus();
}

// rope(x [..., D], cos, sin): x * cos + rotate_half(x) * sin, where cos and
// sin broadcast to x and rotate_half([x1, x2]) = [-x2, x1] over the last dim.
absl::Status Rope(const KernelAttrs&, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckRope("rope", "x", inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& cos = inputs[1];
  const TensorView& sin = inputs[2];
  const TensorView& y = outputs[0];
  int64_t half = x.shape.back() / 2;
  const float* xs = x.As<float>();
  const float* cs = cos.As<float>();
  const float* ss = sin.As<float>();
  float* ys = y.As<float>();
  StridedIndexWalker walker(x.shape, {BroadcastStrides(cos.shape, x.shape),
                                      BroadcastStrides(sin.shape, x.shape)});
  for (int64_t e = 0; e < x.NumElements(); ++e, walker.Next()) {
    bool first_half = (e % (2 * half)) < half;
    double rotated = first_half ? -static_cast<double>(xs[e + half]) : xs[e - half];
    ys[e] = static_cast<float>(static_cast<double>(xs[e]) * cs[walker.Offset(0)] +
                               rotated * ss[walker.Offset(1)]);
  }
  return absl::OkStatus();
}

// swiglu(gate, up) = silu(gate) * up, same shapes.
absl::Status Swiglu(const KernelAttrs&, absl::Span<const TensorView> inputs,
                    absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckSwiglu(inputs, outputs));
  const TensorView& gate = inputs[0];
  const TensorView& up = inputs[1];
  const TensorView& y = outputs[0];
  for (int64_t i = 0; i < gate.NumElements(); ++i) {
    double x = FloatAt(gate, i);
    StoreFloatAt(y, i, static_cast<float>(x / (1.0 + std::exp(-x)) * FloatAt(up, i)));
  }
  return absl::OkStatus();
}

// attention(q, k, v [, cu_seqlens]) {scale, causal} -> [B, Hq, S, Dv]:
// softmax(scale * q k^T + mask) v per query head, query head h reading kv
// head h / (Hq / Hkv). A query that sees no key gets zeros.
absl::Status Attention(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                       absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "attention";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 4, outputs, 1));
  VEOMNI_ASSIGN_OR_RETURN(AttentionGeometry geo, PlanAttention(kKernel, attrs, inputs));
  const TensorView& out = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(
      kKernel, "output", out, {geo.batch, geo.q_heads, geo.q_len, geo.value_dim}));
  const float* q = inputs[0].As<float>();
  const float* k = inputs[1].As<float>();
  const float* v = inputs[2].As<float>();
  float* o = out.As<float>();
  const int64_t d = geo.head_dim;
  const int64_t dv = geo.value_dim;
  std::vector<double> probabilities;
  std::vector<double> accumulator(dv);
  for (int64_t b = 0; b < geo.batch; ++b) {
    for (int64_t h = 0; h < geo.q_heads; ++h) {
      int64_t kv_head = geo.KvHeadOf(h);
      for (int64_t i = 0; i < geo.q_len; ++i) {
        const float* q_row = q + ((b * geo.q_heads + h) * geo.q_len + i) * d;
        float* o_row = o + ((b * geo.q_heads + h) * geo.q_len + i) * dv;
        auto [begin, end] = geo.VisibleKeys(b, i);
        std::fill(accumulator.begin(), accumulator.end(), 0.0);
        if (begin >= end) {
          std::fill(o_row, o_row + dv, 0.0f);
          continue;
        }
        // Key token u lives at k[u / Sk, kv_head, u % Sk].
        auto key_row = [&](const float* base, int64_t u, int64_t width) {
          int64_t kb = u / geo.kv_len;
          int64_t j = u % geo.kv_len;
          return base + ((kb * geo.kv_heads + kv_head) * geo.kv_len + j) * width;
        };
        probabilities.assign(end - begin, 0.0);
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t u = begin; u < end; ++u) {
          const float* k_row = key_row(k, u, d);
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(q_row[c]) * k_row[c];
          probabilities[u - begin] = geo.scale * dot;
          max = std::max(max, geo.scale * dot);
        }
        double sum = 0.0;
        for (double& p : probabilities) {
          p = std::exp(p - max);
          sum += p;
        }
        for (int64_t u = begin; u < end; ++u) {
          const float* v_row = key_row(v, u, dv);
          double weight = probabilities[u - begin] / sum;
          for (int64_t c = 0; c < dv; ++c) accumulator[c] += weight * v_row[c];
        }
        for (int64_t c = 0; c < dv; ++c) o_row[c] = static_cast<float>(accumulator[c]);
      }
    }
  }
  return absl::OkStatus();
}

// cross_entropy(logits [..., V], labels [...]) {ignore_index, reduction}:
// per token logsumexp(logits) - logits[label]; ignored tokens give 0 and are
// not counted; mean over counted tokens (NaN if none, as PyTorch); output []
// for mean and sum, labels' shape for none.
absl::Status CrossEntropy(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                          absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cross_entropy";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& logits = inputs[0];
  const TensorView& out = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(CrossEntropyPlan plan,
                          PlanCrossEntropy(kKernel, attrs, logits, inputs[1]));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", out, DType::kF32));
  bool per_token = plan.reduction == LossReduction::kNone;
  std::vector<int64_t> scalar_shape;
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kKernel, "output", out, per_token ? inputs[1].shape : scalar_shape));
  const float* x = logits.As<float>();
  float* y = out.As<float>();
  double total = 0.0;
  for (int64_t r = 0; r < plan.rows; ++r) {
    double loss = 0.0;
    if (!plan.ignored[r]) {
      const float* row = x + r * plan.vocab;
      loss = LogSumExp(row, plan.vocab) - row[plan.labels[r]];
    }
    if (per_token) y[r] = static_cast<float>(loss);
    total += loss;
  }
  if (plan.reduction == LossReduction::kSum) y[0] = static_cast<float>(total);
  if (plan.reduction == LossReduction::kMean) {
    y[0] = plan.counted == 0 ? std::numeric_limits<float>::quiet_NaN()
                             : static_cast<float>(total / static_cast<double>(plan.counted));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> CheckRmsNorm(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                                    absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rms_norm";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& y = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, x.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "w", w, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", y, DType::kF32));
  if (x.shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kKernel, ": x must have rank >= 1"));
  }
  int64_t dim = x.shape.back();
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "w", w, {dim}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", y, x.shape));
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, RequiredFloat(kKernel, attrs, "epsilon"));
  return epsilon;
}

absl::Status CheckRope(absl::string_view kKernel, absl::string_view role,
                       absl::Span<const TensorView> inputs, absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 1));
  const TensorView& x = inputs[0];
  const TensorView& cos = inputs[1];
  const TensorView& sin = inputs[2];
  const TensorView& y = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, x.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "cos", cos, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "sin", sin, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", y, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", y, x.shape));
  if (x.shape.empty() || x.shape.back() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKernel, ": ", role, " ", FormatShape(x.shape), " needs an even last dim to rotate halves"));
  }
  for (const TensorView* table : {&cos, &sin}) {
    if (!IsBroadcastableTo(table->shape, x.shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          kKernel, ": ", table == &cos ? "cos " : "sin ", FormatShape(table->shape),
          " does not broadcast to ", role, " ", FormatShape(x.shape)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSwiglu(absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "swiglu";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& gate = inputs[0];
  const TensorView& up = inputs[1];
  // f32, or bf16 throughout (vo-bf16-matmuls keeps gate and up in bf16).
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, gate.dtype, {DType::kF32, DType::kBF16}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "up", up, gate.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", outputs[0], gate.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "up", up, gate.shape));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", outputs[0], gate.shape));
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
