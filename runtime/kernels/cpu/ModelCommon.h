// Operand checks shared by the LLM kernels and their gradients, so the forward
// and backward of one op agree on shapes, masks and label handling. The CUDA
// kernels use the checks that read no operand data (their operands live on the
// GPU) and check ids, labels and cu_seqlens on the device instead.

#ifndef VEOMNI_RUNTIME_KERNELS_CPU_MODELCOMMON_H
#define VEOMNI_RUNTIME_KERNELS_CPU_MODELCOMMON_H

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::cpu {

// Element `index` of an i64 or i32 tensor.
int64_t ReadIndex(const TensorView& indices, int64_t index);

// InvalidArgument "<kernel>: ids have dtype f32, expected i64 or i32".
absl::Status CheckTokenIdsDType(absl::string_view kernel, const TensorView& ids);
// CheckTokenIdsDType, then OutOfRange
// "<kernel>: token id 300 is outside the vocabulary [0, 256)" for a bad id.
absl::Status CheckTokenIds(absl::string_view kernel, const TensorView& ids, int64_t vocab);

// Validated attention operands: q [B, Hq, S, D], k [B, Hkv, Sk, D],
// v [B, Hkv, Sk, Dv] and optional cu_seqlens [N + 1] (i32 or i64).
struct AttentionGeometry {
  int64_t batch = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;
  double scale = 1.0;
  bool causal = false;
  // cu_seqlens' length N + 1; 0 without cu_seqlens.
  int64_t num_offsets = 0;
  // Document boundaries in the flattened B * S token axis; empty if none or
  // not read (PlanAttentionShapes).
  std::vector<int64_t> cu_seqlens;

  int64_t KvHeadOf(int64_t q_head) const { return q_head / (q_heads / kv_heads); }
  // The keys query (b, i) may see, as [begin, end) in the flattened key axis
  // (key token u is k[u / Sk, :, u % Sk]). Empty when nothing is visible.
  std::pair<int64_t, int64_t> VisibleKeys(int64_t b, int64_t i) const;
};

// Reads {scale (default 1/sqrt(D)), causal (default 0)} and checks q, k, v and
// cu_seqlens' dtype and shape; with cu_seqlens, S must equal Sk. Reads no
// operand data, so cu_seqlens stays empty.
absl::StatusOr<AttentionGeometry> PlanAttentionShapes(absl::string_view kernel,
                                                      const KernelAttrs& attrs,
                                                      absl::Span<const TensorView> inputs);
// PlanAttentionShapes, then reads cu_seqlens, which must be non-decreasing
// offsets within [0, B * S].
absl::StatusOr<AttentionGeometry> PlanAttention(absl::string_view kernel,
                                                const KernelAttrs& attrs,
                                                absl::Span<const TensorView> inputs);

enum class LossReduction { kMean = 0, kSum = 1, kNone = 2 };

// Validated cross-entropy operands: logits [..., V] f32, labels [...] i64/i32.
struct CrossEntropyPlan {
  int64_t rows = 0;
  int64_t vocab = 0;
  LossReduction reduction = LossReduction::kMean;
  int64_t ignore_index = -100;
  // Filled by PlanCrossEntropy only (PlanCrossEntropyShapes reads no labels).
  std::vector<int64_t> labels;   // one per row
  std::vector<bool> ignored;     // label == ignore_index
  int64_t counted = 0;           // rows not ignored
};

// Reads {ignore_index (default -100), reduction (default 0 = mean)} and checks
// dtypes and shapes, reading no operand data.
absl::StatusOr<CrossEntropyPlan> PlanCrossEntropyShapes(absl::string_view kernel,
                                                        const KernelAttrs& attrs,
                                                        const TensorView& logits,
                                                        const TensorView& labels);
// PlanCrossEntropyShapes, then reads the labels; a label outside [0, V) that
// is not ignore_index is OutOfRange.
absl::StatusOr<CrossEntropyPlan> PlanCrossEntropy(absl::string_view kernel,
                                                  const KernelAttrs& attrs,
                                                  const TensorView& logits,
                                                  const TensorView& labels);

// log(sum(exp(row))) of `count` floats, in double and shifted by the max.
double LogSumExp(const float* row, int64_t count);

// The operand checks of rms_norm, rope and swiglu, shared by the CPU and
// CUDA kernels. rms_norm: x [..., D] f32, w [D], output like x; returns
// epsilon. rope: x f32 with an even last dim, cos and sin broadcasting to it,
// output like x. swiglu: gate and up of one shape, output like them.
absl::StatusOr<double> CheckRmsNorm(const KernelAttrs& attrs, absl::Span<const TensorView> inputs,
                                    absl::Span<const TensorView> outputs);
// rope_grad checks the same with `role` dy.
absl::Status CheckRope(absl::string_view kernel, absl::string_view role,
                       absl::Span<const TensorView> inputs, absl::Span<const TensorView> outputs);
absl::Status CheckSwiglu(absl::Span<const TensorView> inputs,
                         absl::Span<const TensorView> outputs);

// The operand checks of rms_norm_grad (returns epsilon), swiglu_grad and
// embedding_grad (the ids' dtype; their values are checked where they are
// read: on the host by the CPU kernel, on the GPU by a flag).
absl::StatusOr<double> CheckRmsNormGrad(const KernelAttrs& attrs,
                                        absl::Span<const TensorView> inputs,
                                        absl::Span<const TensorView> outputs);
absl::Status CheckSwigluGrad(absl::Span<const TensorView> inputs,
                             absl::Span<const TensorView> outputs);
absl::Status CheckEmbeddingGrad(absl::Span<const TensorView> inputs,
                                absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime::cpu

#endif  // VEOMNI_RUNTIME_KERNELS_CPU_MODELCOMMON_H
