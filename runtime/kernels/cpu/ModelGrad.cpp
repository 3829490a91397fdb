// Gradients of the LLM ops for the compiler's autodiff. Each recomputes what
// it needs from the forward inputs (no saved state) and accumulates in double.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ModelCommon.h"

namespace veomni::runtime::cpu {

// rms_norm_grad(x [..., D], w [D], dy [..., D]) {epsilon} -> (dx, dw [D]);
// with r = 1/rms(x): dx = r * (dy*w - x * r^2 * mean(dy*w*x)),
// dw = sum over rows of dy * x * r.
absl::Status RmsNormGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, CheckRmsNormGrad(attrs, inputs, outputs));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& dy = inputs[2];
  const TensorView& dx = outputs[0];
  const TensorView& dw = outputs[1];
  int64_t dim = x.shape.back();
  if (dim == 0) return absl::OkStatus();
  int64_t rows = x.NumElements() / dim;
  const float* xs = x.As<float>();
  const float* ws = w.As<float>();
  const float* dys = dy.As<float>();
  float* dxs = dx.As<float>();
  std::vector<double> dw_sum(dim, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x_row = xs + r * dim;
    const float* dy_row = dys + r * dim;
    double sum_squares = 0.0;
    double dot = 0.0;  // sum of dy * w * x
    for (int64_t j = 0; j < dim; ++j) {
      sum_squares += static_cast<double>(x_row[j]) * x_row[j];
      dot += static_cast<double>(dy_row[j]) * ws[j] * x_row[j];
    }
    double inv_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + epsilon);
    double correction = inv_rms * inv_rms * dot / static_cast<double>(dim);
    for (int64_t j = 0; j < dim; ++j) {
      double dy_w = static_cast<double>(dy_row[j]) * ws[j];
      dxs[r * dim + j] = static_cast<float>(inv_rms * (dy_w - x_row[j] * correction));
      dw_sum[j] += static_cast<double>(dy_row[j]) * x_row[j] * inv_rms;
    }
  }
  float* dws = dw.As<float>();
  for (int64_t j = 0; j < dim; ++j) dws[j] = static_cast<float>(dw_sum[j]);
  return absl::OkStatus();
}

// rope_grad(dy [..., D], cos, sin) -> dx, the transpose of rope for any
// cos/sin: dx = dy*cos + rotate_half^T(dy*sin), rotate_half^T([g1, g2]) =
// [g2, -g1]; note sin is read at the partner position.
absl::Status RopeGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                      absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rope_grad";
  VEOMNI_RETURN_IF_ERROR(CheckRope(kKernel, "dy", inputs, outputs));
  const TensorView& dy = inputs[0];
  const TensorView& cos = inputs[1];
  const TensorView& sin = inputs[2];
  const TensorView& dx = outputs[0];
  int64_t half = dy.shape.back() / 2;
  std::vector<int64_t> sin_strides = BroadcastStrides(sin.shape, dy.shape);
  // How far sin's offset moves between a position and its partner.
  int64_t sin_partner_step = half * sin_strides.back();
  const float* g = dy.As<float>();
  const float* cs = cos.As<float>();
  const float* ss = sin.As<float>();
  float* out = dx.As<float>();
  StridedIndexWalker walker(dy.shape, {BroadcastStrides(cos.shape, dy.shape), sin_strides});
  for (int64_t e = 0; e < dy.NumElements(); ++e, walker.Next()) {
    bool first_half = (e % (2 * half)) < half;
    double rotated =
        first_half
            ? static_cast<double>(g[e + half]) * ss[walker.Offset(1) + sin_partner_step]
            : -static_cast<double>(g[e - half]) * ss[walker.Offset(1) - sin_partner_step];
    out[e] = static_cast<float>(static_cast<double>(g[e]) * cs[walker.Offset(0)] + rotated);
  }
  return absl::OkStatus();
}

// swiglu_grad(gate, up, dy) -> (dgate, dup): with s = sigmoid(gate),
// dgate = dy * up * s * (1 + gate * (1 - s)), dup = dy * gate * s.
absl::Status SwigluGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckSwigluGrad(inputs, outputs));
  const TensorView& gate = inputs[0];
  const TensorView& up = inputs[1];
  const float* dy = inputs[2].As<float>();
  float* dgate = outputs[0].As<float>();
  float* dup = outputs[1].As<float>();
  for (int64_t i = 0; i < gate.NumElements(); ++i) {
    double x = FloatAt(gate, i);
    double s = 1.0 / (1.0 + std::exp(-x));
    dgate[i] = static_cast<float>(static_cast<double>(dy[i]) * FloatAt(up, i) * s *
                                  (1.0 + x * (1.0 - s)));
    dup[i] = static_cast<float>(static_cast<double>(dy[i]) * x * s);
  }
  return absl::OkStatus();
}

// attention_grad(q, k, v, dout [, cu_seqlens]) {scale, causal} -> (dq, dk,
// dv). Recomputes each query row's softmax p; with dp = dout . v and
// ds = p * (dp - sum(p * dp)): dq = scale * ds k, dk += scale * ds q,
// dv += p dout, summed over the query heads sharing a kv head.
absl::Status AttentionGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "attention_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 4, 5, outputs, 3));
  // PlanAttention reads q, k, v at 0..2 and cu_seqlens at 3; dout sits at 3.
  std::vector<TensorView> forward_inputs = {inputs[0], inputs[1], inputs[2]};
  if (inputs.size() == 5) forward_inputs.push_back(inputs[4]);
  VEOMNI_ASSIGN_OR_RETURN(AttentionGeometry geo, PlanAttention(kKernel, attrs, forward_inputs));
  const TensorView& dout = inputs[3];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "dout", dout, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dout", dout,
                                    {geo.batch, geo.q_heads, geo.q_len, geo.value_dim}));
  const char* roles[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, roles[i], outputs[i], DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, roles[i], outputs[i], inputs[i].shape));
  }
  const float* q = inputs[0].As<float>();
  const float* k = inputs[1].As<float>();
  const float* v = inputs[2].As<float>();
  const float* go = dout.As<float>();
  const int64_t d = geo.head_dim;
  const int64_t dv = geo.value_dim;
  std::vector<double> dk_sum(inputs[1].NumElements(), 0.0);
  std::vector<double> dv_sum(inputs[2].NumElements(), 0.0);
  std::vector<double> probabilities, dp;
  std::vector<double> dq_row(d);
  float* dq = outputs[0].As<float>();
  for (int64_t b = 0; b < geo.batch; ++b) {
    for (int64_t h = 0; h < geo.q_heads; ++h) {
      int64_t kv_head = geo.KvHeadOf(h);
      for (int64_t i = 0; i < geo.q_len; ++i) {
        int64_t row_index = (b * geo.q_heads + h) * geo.q_len + i;
        const float* q_row = q + row_index * d;
        const float* go_row = go + row_index * dv;
        auto [begin, end] = geo.VisibleKeys(b, i);
        std::fill(dq_row.begin(), dq_row.end(), 0.0);
        // Offset of key token u's row in a [B, Hkv, Sk, width] tensor.
        auto key_offset = [&](int64_t u, int64_t width) {
          return ((u / geo.kv_len * geo.kv_heads + kv_head) * geo.kv_len + u % geo.kv_len) *
                 width;
        };
        int64_t visible = std::max<int64_t>(end - begin, 0);
        probabilities.assign(visible, 0.0);
        dp.assign(visible, 0.0);
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t u = begin; u < end; ++u) {
          const float* k_row = k + key_offset(u, d);
          const float* v_row = v + key_offset(u, dv);
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(q_row[c]) * k_row[c];
          double grad_dot = 0.0;
          for (int64_t c = 0; c < dv; ++c) grad_dot += static_cast<double>(go_row[c]) * v_row[c];
          probabilities[u - begin] = geo.scale * dot;
          dp[u - begin] = grad_dot;
          max = std::max(max, geo.scale * dot);
        }
        double sum = 0.0;
        for (double& p : probabilities) {
          p = std::exp(p - max);
          sum += p;
        }
        double expected_dp = 0.0;
        for (int64_t t = 0; t < visible; ++t) {
          probabilities[t] /= sum;
          expected_dp += probabilities[t] * dp[t];
        }
        for (int64_t u = begin; u < end; ++u) {
          double p = probabilities[u - begin];
          double ds = p * (dp[u - begin] - expected_dp) * geo.scale;
          const float* k_row = k + key_offset(u, d);
          double* dk_row = dk_sum.data() + key_offset(u, d);
          double* dv_row = dv_sum.data() + key_offset(u, dv);
          for (int64_t c = 0; c < d; ++c) {
            dq_row[c] += ds * k_row[c];
            dk_row[c] += ds * q_row[c];
          }
          for (int64_t c = 0; c < dv; ++c) dv_row[c] += p * go_row[c];
        }
        for (int64_t c = 0; c < d; ++c) dq[row_index * d + c] = static_cast<float>(dq_row[c]);
      }
    }
  }
  std::transform(dk_sum.begin(), dk_sum.end(), outputs[1].As<float>(),
                 [](double x) { return static_cast<float>(x); });
  std::transform(dv_sum.begin(), dv_sum.end(), outputs[2].As<float>(),
                 [](double x) { return static_cast<float>(x); });
  return absl::OkStatus();
}

// cross_entropy_grad(logits, labels, dloss) {ignore_index, reduction} ->
// dlogits = (softmax(logits) - onehot(label)) * dloss, divided by the number
// of counted tokens for mean; dloss is [] for mean/sum and labels' shape for
// none; ignored rows get zeros. dlogits is f32, or bf16 (each element
// computed as for f32, then rounded).
absl::Status CrossEntropyGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                              absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "cross_entropy_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 1));
  const TensorView& logits = inputs[0];
  const TensorView& dloss = inputs[2];
  const TensorView& dlogits = outputs[0];
  VEOMNI_ASSIGN_OR_RETURN(CrossEntropyPlan plan,
                          PlanCrossEntropy(kKernel, attrs, logits, inputs[1]));
  bool per_token = plan.reduction == LossReduction::kNone;
  std::vector<int64_t> scalar_shape;
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "dloss", dloss, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kKernel, "dloss", dloss, per_token ? inputs[1].shape : scalar_shape));
  if (dlogits.dtype != DType::kBF16) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", dlogits, DType::kF32));
  }
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "output", dlogits, logits.shape));
  const float* x = logits.As<float>();
  const float* g = dloss.As<float>();
  const bool bf16 = dlogits.dtype == DType::kBF16;
  // One row in f32, rounded into a bf16 output after.
  std::vector<float> bf16_row(bf16 ? plan.vocab : 0);
  for (int64_t r = 0; r < plan.rows; ++r) {
    float* dx_row = bf16 ? bf16_row.data() : dlogits.As<float>() + r * plan.vocab;
    auto store_row = [&] {
      if (!bf16) return;
      uint16_t* out = dlogits.As<uint16_t>() + r * plan.vocab;
      for (int64_t c = 0; c < plan.vocab; ++c) out[c] = FloatToBFloat16Bits(dx_row[c]);
    };
    if (plan.ignored[r]) {
      std::fill(dx_row, dx_row + plan.vocab, 0.0f);
      store_row();
      continue;
    }
    double scale = per_token ? g[r] : g[0];
    // counted >= 1 here: this row is not ignored.
    if (plan.reduction == LossReduction::kMean) scale /= static_cast<double>(plan.counted);
    const float* row = x + r * plan.vocab;
    double log_sum_exp = LogSumExp(row, plan.vocab);
    for (int64_t c = 0; c < plan.vocab; ++c) {
      double probability = std::exp(row[c] - log_sum_exp);
      double onehot = c == plan.labels[r] ? 1.0 : 0.0;
      dx_row[c] = static_cast<float>((probability - onehot) * scale);
    }
    store_row();
  }
  return absl::OkStatus();
}

// embedding_grad(ids [...], dy [..., H]) -> dtable [V, H]: zeroed, then
// dy rows scatter-added at their ids (in f32: a [V, H] double buffer would
// cost 2x the table).
absl::Status EmbeddingGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                           absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "embedding_grad";
  VEOMNI_RETURN_IF_ERROR(CheckEmbeddingGrad(inputs, outputs));
  const TensorView& ids = inputs[0];
  const TensorView& dy = inputs[1];
  const TensorView& dtable = outputs[0];
  int64_t vocab = dtable.shape[0];
  int64_t hidden = dtable.shape[1];
  VEOMNI_RETURN_IF_ERROR(CheckTokenIds(kKernel, ids, vocab));
  float* table = dtable.As<float>();
  std::fill(table, table + dtable.NumElements(), 0.0f);
  const float* g = dy.As<float>();
  for (int64_t t = 0; t < ids.NumElements(); ++t) {
    float* row = table + ReadIndex(ids, t) * hidden;
    const float* g_row = g + t * hidden;
    for (int64_t c = 0; c < hidden; ++c) row[c] += g_row[c];
  }
  return absl::OkStatus();
}

absl::StatusOr<double> CheckRmsNormGrad(const KernelAttrs& attrs,
                                        absl::Span<const TensorView> inputs,
                                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "rms_norm_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 2));
  const TensorView& x = inputs[0];
  const TensorView& w = inputs[1];
  const TensorView& dy = inputs[2];
  const TensorView& dx = outputs[0];
  const TensorView& dw = outputs[1];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, x.dtype, {DType::kF32}));
  const char* roles[] = {"w", "dy", "dx", "dw"};
  const TensorView* others[] = {&w, &dy, &dx, &dw};
  for (int i = 0; i < 4; ++i) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, roles[i], *others[i], DType::kF32));
  }
  if (x.shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kKernel, ": x must have rank >= 1"));
  }
  int64_t dim = x.shape.back();
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "w", w, {dim}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dy", dy, x.shape));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dx", dx, x.shape));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dw", dw, {dim}));
  VEOMNI_ASSIGN_OR_RETURN(double epsilon, RequiredFloat(kKernel, attrs, "epsilon"));
  return epsilon;
}

absl::Status CheckSwigluGrad(absl::Span<const TensorView> inputs,
                             absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "swiglu_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 3, 3, outputs, 2));
  const TensorView& gate = inputs[0];
  // gate and up f32, or bf16 (vo-bf16-matmuls); dy and the gradients f32.
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, gate.dtype, {DType::kF32, DType::kBF16}));
  const char* roles[] = {"up", "dy", "dgate", "dup"};
  const TensorView* others[] = {&inputs[1], &inputs[2], &outputs[0], &outputs[1]};
  for (int i = 0; i < 4; ++i) {
    VEOMNI_RETURN_IF_ERROR(
        CheckDType(kKernel, roles[i], *others[i], i == 0 ? gate.dtype : DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, roles[i], *others[i], gate.shape));
  }
  return absl::OkStatus();
}

absl::Status CheckEmbeddingGrad(absl::Span<const TensorView> inputs,
                                absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "embedding_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, inputs, 2, 2, outputs, 1));
  const TensorView& ids = inputs[0];
  const TensorView& dy = inputs[1];
  const TensorView& dtable = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kKernel, dy.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "output", dtable, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kKernel, "output", dtable, 2));
  int64_t hidden = dtable.shape[1];
  std::vector<int64_t> expected = ids.shape;
  expected.push_back(hidden);
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "dy", dy, expected));
  return CheckTokenIdsDType(kKernel, ids);
}

}  // namespace veomni::runtime::cpu
