// Mixture-of-experts kernels (Qwen3-MoE): top_k, the softmax router moe_gate
// and its gradient, and the SwiGLU experts moe_experts (fused gate_up
// [E, 2I, H], down [E, H, I]) and their gradient. f32 only; expert ids i64 or
// i32; sums and dot products accumulate in double.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cpu/KernelSupport.h"
#include "runtime/kernels/cpu/ModelCommon.h"
#include "runtime/kernels/cpu/MoeCommon.h"

namespace veomni::runtime::cpu {
namespace {

// Whether `a` (at index ia) ranks before `b` (at ib) in a descending top-k:
// the larger value first, NaN above every number (as torch.topk), equal
// values by the lower index.
template <typename T>
bool RanksBefore(T a, int64_t ia, T b, int64_t ib) {
  bool a_nan = std::isnan(a);
  bool b_nan = std::isnan(b);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

// The indices of the `k` highest-ranked of `values[0, count)`, in rank order.
template <typename T>
void SelectTopK(const T* values, int64_t count, int64_t k, std::vector<int64_t>& order) {
  order.resize(count);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return RanksBefore(values[a], a, values[b], b); });
  order.resize(k);
}

// softmax(row) in double, shifted by the row's max.
void SoftmaxRow(const float* row, int64_t count, std::vector<double>& probabilities) {
  double log_sum_exp = LogSumExp(row, count);
  probabilities.resize(count);
  for (int64_t j = 0; j < count; ++j) probabilities[j] = std::exp(row[j] - log_sum_exp);
}

double Dot(const float* a, const float* b, int64_t count) {
  double sum = 0.0;
  for (int64_t c = 0; c < count; ++c) sum += static_cast<double>(a[c]) * b[c];
  return sum;
}

}  // namespace

absl::Status CheckExpertIdDType(absl::string_view kernel, const TensorView& experts) {
  if (experts.dtype == DType::kI64 || experts.dtype == DType::kI32) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      kernel, ": experts have dtype ", DTypeName(experts.dtype), ", expected i64 or i32"));
}

absl::Status CheckExpertIdRange(absl::string_view kernel, const TensorView& experts,
                                int64_t num_experts) {
  for (int64_t i = 0; i < experts.NumElements(); ++i) {
    int64_t id = ReadIndex(experts, i);
    if (id < 0 || id >= num_experts) {
      return absl::OutOfRangeError(absl::StrCat(kernel, ": expert id ", id, " at position ", i,
                                                " is outside [0, ", num_experts, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TopKPlan> PlanTopK(absl::string_view kernel, const KernelAttrs& attrs,
                                  absl::Span<const TensorView> inputs,
                                  absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 2));
  const TensorView& x = inputs[0];
  const TensorView& values = outputs[0];
  const TensorView& indices = outputs[1];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, x.dtype, {DType::kF32}));
  if (x.shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": x must have rank >= 1"));
  }
  TopKPlan plan;
  VEOMNI_ASSIGN_OR_RETURN(plan.k, RequiredInt(kernel, attrs, "k"));
  plan.count = x.shape.back();
  if (plan.k < 0 || plan.k > plan.count) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": k ", plan.k, " is outside [0, ",
                                                   plan.count, "] (the last dim of x ",
                                                   FormatShape(x.shape), ")"));
  }
  std::vector<int64_t> out_shape = x.shape;
  out_shape.back() = plan.k;
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "values", values, x.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "values", values, out_shape));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "indices", indices, DType::kI64));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "indices", indices, out_shape));
  plan.rows = DimProduct(x.shape, 0, x.shape.size() - 1);
  return plan;
}

absl::StatusOr<MoeGatePlan> PlanMoeGate(absl::string_view kernel, const KernelAttrs& attrs,
                                        absl::Span<const TensorView> inputs,
                                        absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 1, 1, outputs, 2));
  const TensorView& logits = inputs[0];
  const TensorView& weights = outputs[0];
  const TensorView& experts = outputs[1];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, logits.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "logits", logits, 2));
  MoeGatePlan plan;
  VEOMNI_ASSIGN_OR_RETURN(plan.top_k, RequiredInt(kernel, attrs, "top_k"));
  VEOMNI_ASSIGN_OR_RETURN(plan.normalize, OptionalFlag(kernel, attrs, "normalize", false));
  plan.tokens = logits.shape[0];
  plan.experts = logits.shape[1];
  if (plan.top_k < 1 || plan.top_k > plan.experts) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": top_k ", plan.top_k,
                                                   " is outside [1, ", plan.experts,
                                                   "] (the number of experts)"));
  }
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "weights", weights, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "weights", weights, {plan.tokens, plan.top_k}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "experts", experts, DType::kI64));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "experts", experts, {plan.tokens, plan.top_k}));
  return plan;
}

absl::StatusOr<MoeGateGradPlan> PlanMoeGateGrad(absl::string_view kernel,
                                                const KernelAttrs& attrs,
                                                absl::Span<const TensorView> inputs,
                                                absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckArity(kernel, inputs, 3, 3, outputs, 1));
  const TensorView& logits = inputs[0];
  const TensorView& experts = inputs[1];
  const TensorView& weights_grad = inputs[2];
  const TensorView& logits_grad = outputs[0];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, logits.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdDType(kernel, experts));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "weights_grad", weights_grad, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", logits_grad, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "logits", logits, 2));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "experts", experts, 2));
  MoeGateGradPlan plan;
  plan.tokens = logits.shape[0];
  plan.experts = logits.shape[1];
  plan.slots = experts.shape[1];
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "experts", experts, {plan.tokens, plan.slots}));
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kernel, "weights_grad", weights_grad, {plan.tokens, plan.slots}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "output", logits_grad, logits.shape));
  VEOMNI_ASSIGN_OR_RETURN(plan.normalize, OptionalFlag(kernel, attrs, "normalize", false));
  return plan;
}

absl::StatusOr<MoeExpertsPlan> PlanMoeExperts(absl::string_view kernel,
                                              absl::Span<const TensorView> inputs) {
  const TensorView& x = inputs[0];
  const TensorView& experts = inputs[1];
  const TensorView& weights = inputs[2];
  const TensorView& gate_up = inputs[3];
  const TensorView& down = inputs[4];
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, x.dtype, {DType::kF32}));
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdDType(kernel, experts));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "weights", weights, DType::kF32));
  // The expert weights: f32, or both bf16 (vo-bf16-matmuls rounded them).
  VEOMNI_RETURN_IF_ERROR(CheckSupportedDType(kernel, gate_up.dtype, {DType::kF32, DType::kBF16}));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "down", down, gate_up.dtype));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "x", x, 2));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "experts", experts, 2));
  VEOMNI_RETURN_IF_ERROR(CheckRank(kernel, "gate_up", gate_up, 3));
  MoeExpertsPlan plan;
  plan.tokens = x.shape[0];
  plan.hidden = x.shape[1];
  plan.slots = experts.shape[1];
  plan.experts = gate_up.shape[0];
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "experts", experts, {plan.tokens, plan.slots}));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "weights", weights, {plan.tokens, plan.slots}));
  if (gate_up.shape[1] % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": gate_up ", FormatShape(gate_up.shape),
                     " needs an even dim 1 (2I: the gate rows, then the up rows)"));
  }
  plan.intermediate = gate_up.shape[1] / 2;
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kernel, "gate_up", gate_up, {plan.experts, 2 * plan.intermediate, plan.hidden}));
  VEOMNI_RETURN_IF_ERROR(
      CheckShape(kernel, "down", down, {plan.experts, plan.hidden, plan.intermediate}));
  return plan;
}

absl::Status CheckMoeProjected(absl::string_view kernel, const MoeExpertsPlan& plan,
                               const TensorView& projected) {
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "projected", projected, DType::kF32));
  return CheckShape(kernel, "projected", projected,
                    {plan.tokens * plan.slots, 2 * plan.intermediate});
}

absl::Status CheckMoeExpertsOutput(absl::string_view kernel, const MoeExpertsPlan& plan,
                                   absl::Span<const TensorView> outputs) {
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "output", outputs[0], DType::kF32));
  return CheckShape(kernel, "output", outputs[0], {plan.tokens, plan.hidden});
}

absl::Status CheckMoeExpertsGradOperands(absl::string_view kernel, const MoeExpertsPlan& plan,
                                         absl::Span<const TensorView> inputs,
                                         absl::Span<const TensorView> outputs) {
  const TensorView& y_grad = inputs[5];
  VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, "y_grad", y_grad, DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, "y_grad", y_grad, {plan.tokens, plan.hidden}));
  const char* roles[] = {"x_grad", "weights_grad", "gate_up_grad", "down_grad"};
  const TensorView* primals[] = {&inputs[0], &inputs[2], &inputs[3], &inputs[4]};
  for (int i = 0; i < 4; ++i) {
    VEOMNI_RETURN_IF_ERROR(CheckDType(kernel, roles[i], outputs[i], DType::kF32));
    VEOMNI_RETURN_IF_ERROR(CheckShape(kernel, roles[i], outputs[i], primals[i]->shape));
  }
  return absl::OkStatus();
}

// top_k(x [..., N]) {k} -> (values [..., k], indices [..., k] i64): the k
// largest along the last axis, in descending order; equal values by the
// lower index; NaN ranks above every number (as torch.topk). 0 <= k <= N.
absl::Status TopK(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                  absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(TopKPlan plan, PlanTopK("top_k", attrs, inputs, outputs));
  const int64_t rows = plan.rows;
  const int64_t count = plan.count;
  const int64_t k = plan.k;
  const float* xs = inputs[0].As<float>();
  float* vs = outputs[0].As<float>();
  int64_t* is = outputs[1].As<int64_t>();
  std::vector<int64_t> order;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xs + r * count;
    SelectTopK(row, count, k, order);
    for (int64_t j = 0; j < k; ++j) {
      vs[r * k + j] = row[order[j]];
      is[r * k + j] = order[j];
    }
  }
  return absl::OkStatus();
}

// moe_gate(logits [T, E]) {top_k, normalize} -> (weights [T, k] f32,
// experts [T, k] i64): p = softmax(logits) per row, the top_k largest p
// (descending, equal p by the lower expert), weights = those p, divided by
// their sum when normalize = 1. top_k is required, 1 <= top_k <= E;
// normalize defaults to 0 (the compiler's unit attribute is absent when unset).
absl::Status MoeGate(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                     absl::Span<const TensorView> outputs) {
  VEOMNI_ASSIGN_OR_RETURN(MoeGatePlan plan, PlanMoeGate("moe_gate", attrs, inputs, outputs));
  const int64_t tokens = plan.tokens;
  const int64_t num_experts = plan.experts;
  const int64_t top_k = plan.top_k;
  const bool normalize = plan.normalize;
  const float* x = inputs[0].As<float>();
  float* ws = outputs[0].As<float>();
  int64_t* es = outputs[1].As<int64_t>();
  std::vector<double> probabilities;
  std::vector<int64_t> order;
  for (int64_t t = 0; t < tokens; ++t) {
    SoftmaxRow(x + t * num_experts, num_experts, probabilities);
    SelectTopK(probabilities.data(), num_experts, top_k, order);
    double selected = 0.0;
    for (int64_t j = 0; j < top_k; ++j) selected += probabilities[order[j]];
    for (int64_t j = 0; j < top_k; ++j) {
      double p = probabilities[order[j]];
      ws[t * top_k + j] = static_cast<float>(normalize ? p / selected : p);
      es[t * top_k + j] = order[j];
    }
  }
  return absl::OkStatus();
}

// moe_gate_grad(logits [T, E], experts [T, k], weights_grad [T, k])
// {normalize (default 0)} -> logits_grad [T, E], the selection held fixed.
// With p = softmax(logits) (recomputed) and w_j = p[e_j] / s, s = sum over
// the slots of p[e_slot] (w_j = p[e_j] without normalize):
// dp_i = sum_{j: e_j = i} dw_j / s - c_i * sum_j dw_j p[e_j] / s^2, c_i the
// number of slots choosing i (dp_i = sum_{j: e_j = i} dw_j without
// normalize), then dlogits = p * (dp - sum(dp * p)). moe_gate never chooses
// an expert twice; if experts does, each slot counts, as in the formula.
absl::Status MoeGateGrad(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_gate_grad";
  VEOMNI_ASSIGN_OR_RETURN(MoeGateGradPlan plan, PlanMoeGateGrad(kKernel, attrs, inputs, outputs));
  const TensorView& experts = inputs[1];
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdRange(kKernel, experts, plan.experts));
  const int64_t tokens = plan.tokens;
  const int64_t num_experts = plan.experts;
  const int64_t slots = plan.slots;
  const bool normalize = plan.normalize;
  const float* x = inputs[0].As<float>();
  const float* dw = inputs[2].As<float>();
  float* dx = outputs[0].As<float>();
  std::vector<double> probabilities;
  std::vector<double> dp(num_experts);
  for (int64_t t = 0; t < tokens; ++t) {
    SoftmaxRow(x + t * num_experts, num_experts, probabilities);
    std::fill(dp.begin(), dp.end(), 0.0);
    if (normalize) {
      double selected = 0.0;
      double weighted = 0.0;  // sum_j dw_j p[e_j]
      for (int64_t j = 0; j < slots; ++j) {
        double p = probabilities[ReadIndex(experts, t * slots + j)];
        selected += p;
        weighted += static_cast<double>(dw[t * slots + j]) * p;
      }
      double correction = weighted / (selected * selected);
      for (int64_t j = 0; j < slots; ++j) {
        int64_t e = ReadIndex(experts, t * slots + j);
        dp[e] += static_cast<double>(dw[t * slots + j]) / selected - correction;
      }
    } else {
      for (int64_t j = 0; j < slots; ++j) {
        dp[ReadIndex(experts, t * slots + j)] += dw[t * slots + j];
      }
    }
    double expected_dp = 0.0;
    for (int64_t i = 0; i < num_experts; ++i) expected_dp += dp[i] * probabilities[i];
    for (int64_t i = 0; i < num_experts; ++i) {
      dx[t * num_experts + i] = static_cast<float>(probabilities[i] * (dp[i] - expected_dp));
    }
  }
  return absl::OkStatus();
}

// moe_experts(x [T, H], experts [T, k], weights [T, k], gate_up [E, 2I, H],
// down [E, H, I]) -> y [T, H]: y_t = sum over slots j of
// weights[t, j] * down[e] (silu(g) * u), e = experts[t, j],
// [g; u] = gate_up[e] x_t (g the first I rows). A token choosing an expert in
// two slots gets both terms.
namespace {

// `inputs` with bf16 expert weights (inputs 3 and 4) widened into f32 copies
// held by `storage`: the arithmetic below is the f32 one on their values.
std::vector<TensorView> WithF32ExpertWeights(absl::Span<const TensorView> inputs,
                                             std::vector<std::vector<float>>& storage) {
  std::vector<TensorView> widened(inputs.begin(), inputs.end());
  for (size_t i = 3; i < 5 && i < widened.size(); ++i) {
    if (widened[i].dtype != DType::kBF16) continue;
    const uint16_t* bits = widened[i].As<uint16_t>();
    std::vector<float>& values = storage.emplace_back(widened[i].NumElements());
    for (size_t j = 0; j < values.size(); ++j) values[j] = BFloat16BitsToFloat(bits[j]);
    widened[i].dtype = DType::kF32;
    widened[i].data = values.data();
  }
  return widened;
}

}  // namespace

// With a second output (keep_projected): the routed rows' [g; u] =
// gate_up[e] x_t, row r the r-th (token, slot) by expert, then by t k + j
// (the GPU kernel's order), computed in double and rounded.
absl::Status MoeExperts(const KernelAttrs&, absl::Span<const TensorView> inputs,
                        absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts";
  VEOMNI_RETURN_IF_ERROR(
      CheckArity(kKernel, inputs, 5, 5, outputs, outputs.size() == 2 ? 2 : 1));
  VEOMNI_ASSIGN_OR_RETURN(MoeExpertsPlan plan, PlanMoeExperts(kKernel, inputs));
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdRange(kKernel, inputs[1], plan.experts));
  VEOMNI_RETURN_IF_ERROR(CheckMoeExpertsOutput(kKernel, plan, outputs.first(1)));
  if (outputs.size() == 2) {
    VEOMNI_RETURN_IF_ERROR(CheckMoeProjected(kKernel, plan, outputs[1]));
  }
  std::vector<double> sums(plan.tokens * plan.hidden);
  VEOMNI_RETURN_IF_ERROR(MoeExpertsInDouble(inputs, sums.data()));
  std::transform(sums.begin(), sums.end(), outputs[0].As<float>(),
                 [](double v) { return static_cast<float>(v); });
  if (outputs.size() == 2) {
    std::vector<std::vector<float>> storage;
    const std::vector<TensorView> f32 = WithF32ExpertWeights(inputs, storage);
    const int64_t h = plan.hidden, rows = plan.tokens * plan.slots, width = 2 * plan.intermediate;
    std::vector<int64_t> order(rows);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return ReadIndex(inputs[1], a) < ReadIndex(inputs[1], b);
    });
    const float* xs = f32[0].As<float>();
    const float* gate_up = f32[3].As<float>();
    float* projected = outputs[1].As<float>();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t slot = order[r];
      const float* gu = gate_up + ReadIndex(inputs[1], slot) * width * h;
      for (int64_t c = 0; c < width; ++c) {
        projected[r * width + c] = static_cast<float>(Dot(gu + c * h, xs + slot / plan.slots * h, h));
      }
    }
  }
  return absl::OkStatus();
}


absl::Status MoeExpertsInDouble(absl::Span<const TensorView> given, double* ys) {
  constexpr absl::string_view kKernel = "moe_experts";
  if (given.size() != 5) return absl::InvalidArgumentError("moe_experts: expects 5 inputs");
  VEOMNI_ASSIGN_OR_RETURN(MoeExpertsPlan plan, PlanMoeExperts(kKernel, given));
  std::vector<std::vector<float>> storage;
  const std::vector<TensorView> inputs = WithF32ExpertWeights(given, storage);
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdRange(kKernel, inputs[1], plan.experts));
  const int64_t h = plan.hidden;
  const int64_t inter = plan.intermediate;
  const float* xs = inputs[0].As<float>();
  const TensorView& experts = inputs[1];
  const float* weights = inputs[2].As<float>();
  const float* gate_up = inputs[3].As<float>();
  const float* down = inputs[4].As<float>();
  std::vector<double> projected(2 * inter), activation(inter);
  for (int64_t t = 0; t < plan.tokens; ++t) {
    const float* x_row = xs + t * h;
    double* accumulator = ys + t * h;
    std::fill(accumulator, accumulator + h, 0.0);
    for (int64_t j = 0; j < plan.slots; ++j) {
      int64_t slot = t * plan.slots + j;
      int64_t e = ReadIndex(experts, slot);
      const float* gu = gate_up + e * 2 * inter * h;
      const float* dn = down + e * h * inter;
      for (int64_t r = 0; r < 2 * inter; ++r) projected[r] = Dot(gu + r * h, x_row, h);
      for (int64_t c = 0; c < inter; ++c) {
        double g = projected[c];
        activation[c] = g / (1.0 + std::exp(-g)) * projected[inter + c];
      }
      double weight = weights[slot];
      for (int64_t r = 0; r < h; ++r) {
        const float* dn_row = dn + r * inter;
        double out = 0.0;
        for (int64_t c = 0; c < inter; ++c) out += static_cast<double>(dn_row[c]) * activation[c];
        accumulator[r] += weight * out;
      }
    }
  }
  return absl::OkStatus();
}

// moe_experts_grad(x, experts, weights, gate_up, down, y_grad [T, H]) ->
// (x_grad [T, H], weights_grad [T, k], gate_up_grad [E, 2I, H],
// down_grad [E, H, I]). Per slot, with a = silu(g) * u, o = down[e] a,
// do = weights[t, j] dy_t: weights_grad[t, j] = dy_t . o,
// down_grad[e] += do a^T, da = down[e]^T do, dg = da * u * silu'(g),
// du = da * silu(g), gate_up_grad[e] += [dg; du] x_t^T,
// x_grad[t] += gate_up[e]^T [dg; du]. Every output is overwritten: an expert
// no slot chooses gets zero gradients. Works expert by expert so each
// expert's weight gradients accumulate in a double buffer of one expert's size.
absl::Status MoeExpertsGrad(const KernelAttrs&, absl::Span<const TensorView> inputs,
                            absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts_grad";
  VEOMNI_RETURN_IF_ERROR(
      CheckArity(kKernel, inputs, 6, 7, outputs, 4));
  VEOMNI_ASSIGN_OR_RETURN(MoeExpertsPlan plan, PlanMoeExperts(kKernel, inputs));
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdRange(kKernel, inputs[1], plan.experts));
  VEOMNI_RETURN_IF_ERROR(CheckDType(kKernel, "x_grad", outputs[0], DType::kF32));
  VEOMNI_RETURN_IF_ERROR(CheckShape(kKernel, "x_grad", outputs[0], inputs[0].shape));
  // The forward's projections, when given, are checked; the CPU computes
  // them again in double, as all its arithmetic.
  if (inputs.size() == 7) VEOMNI_RETURN_IF_ERROR(CheckMoeProjected(kKernel, plan, inputs[6]));
  std::vector<double> dx(plan.tokens * plan.hidden);
  VEOMNI_RETURN_IF_ERROR(MoeExpertsGradInDouble(inputs.first(6), outputs, dx.data()));
  std::transform(dx.begin(), dx.end(), outputs[0].As<float>(),
                 [](double v) { return static_cast<float>(v); });
  return absl::OkStatus();
}

absl::Status MoeExpertsGradInDouble(absl::Span<const TensorView> given,
                                    absl::Span<const TensorView> outputs, double* dx) {
  constexpr absl::string_view kKernel = "moe_experts_grad";
  VEOMNI_RETURN_IF_ERROR(CheckArity(kKernel, given, 6, 6, outputs, 4));
  VEOMNI_ASSIGN_OR_RETURN(MoeExpertsPlan plan, PlanMoeExperts(kKernel, given));
  VEOMNI_RETURN_IF_ERROR(CheckExpertIdRange(kKernel, given[1], plan.experts));
  VEOMNI_RETURN_IF_ERROR(CheckMoeExpertsGradOperands(kKernel, plan, given, outputs));
  std::vector<std::vector<float>> storage;
  const std::vector<TensorView> inputs = WithF32ExpertWeights(given, storage);
  const TensorView& y_grad = inputs[5];
  const int64_t h = plan.hidden;
  const int64_t inter = plan.intermediate;
  const float* xs = inputs[0].As<float>();
  const TensorView& experts = inputs[1];
  const float* weights = inputs[2].As<float>();
  const float* gate_up = inputs[3].As<float>();
  const float* down = inputs[4].As<float>();
  const float* dys = y_grad.As<float>();
  float* dweights = outputs[1].As<float>();
  float* dgate_up = outputs[2].As<float>();
  float* ddown = outputs[3].As<float>();

  std::vector<std::vector<int64_t>> slots_of(plan.experts);
  for (int64_t slot = 0; slot < plan.tokens * plan.slots; ++slot) {
    slots_of[ReadIndex(experts, slot)].push_back(slot);
  }
  std::fill(dx, dx + plan.tokens * h, 0.0);
  std::vector<double> gate_up_sum(2 * inter * h);
  std::vector<double> down_sum(h * inter);
  std::vector<double> projected(2 * inter), activation(inter), dactivation(inter);
  std::vector<double> dprojected(2 * inter);
  for (int64_t e = 0; e < plan.experts; ++e) {
    const float* gu = gate_up + e * 2 * inter * h;
    const float* dn = down + e * h * inter;
    std::fill(gate_up_sum.begin(), gate_up_sum.end(), 0.0);
    std::fill(down_sum.begin(), down_sum.end(), 0.0);
    for (int64_t slot : slots_of[e]) {
      int64_t t = slot / plan.slots;
      const float* x_row = xs + t * h;
      const float* dy_row = dys + t * h;
      double weight = weights[slot];
      for (int64_t r = 0; r < 2 * inter; ++r) projected[r] = Dot(gu + r * h, x_row, h);
      for (int64_t c = 0; c < inter; ++c) {
        double g = projected[c];
        activation[c] = g / (1.0 + std::exp(-g)) * projected[inter + c];
      }
      std::fill(dactivation.begin(), dactivation.end(), 0.0);
      double dweight = 0.0;
      for (int64_t r = 0; r < h; ++r) {
        const float* dn_row = dn + r * inter;
        double out = 0.0;
        for (int64_t c = 0; c < inter; ++c) out += static_cast<double>(dn_row[c]) * activation[c];
        dweight += static_cast<double>(dy_row[r]) * out;
        double dout = weight * dy_row[r];
        double* down_sum_row = down_sum.data() + r * inter;
        for (int64_t c = 0; c < inter; ++c) {
          dactivation[c] += dn_row[c] * dout;
          down_sum_row[c] += dout * activation[c];
        }
      }
      dweights[slot] = static_cast<float>(dweight);
      for (int64_t c = 0; c < inter; ++c) {
        double g = projected[c];
        double u = projected[inter + c];
        double s = 1.0 / (1.0 + std::exp(-g));
        dprojected[c] = dactivation[c] * u * s * (1.0 + g * (1.0 - s));
        dprojected[inter + c] = dactivation[c] * g * s;
      }
      double* dx_row = dx + t * h;
      for (int64_t r = 0; r < 2 * inter; ++r) {
        const float* gu_row = gu + r * h;
        double* gate_up_sum_row = gate_up_sum.data() + r * h;
        double dp = dprojected[r];
        for (int64_t c = 0; c < h; ++c) {
          gate_up_sum_row[c] += dp * x_row[c];
          dx_row[c] += dp * gu_row[c];
        }
      }
    }
    std::transform(gate_up_sum.begin(), gate_up_sum.end(), dgate_up + e * 2 * inter * h,
                   [](double v) { return static_cast<float>(v); });
    std::transform(down_sum.begin(), down_sum.end(), ddown + e * h * inter,
                   [](double v) { return static_cast<float>(v); });
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime::cpu
