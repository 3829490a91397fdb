// Launchers of the device code behind Model.cpp (and the operand types that
// ModelGradLaunch.h shares). Free of absl so that nvcc compiles the
// definitions. Each launcher queues its work on `stream` and returns; the
// caller reads launch errors with cudaGetLastError (LaunchStatus). Bad data
// (ids, labels, cu_seqlens) sets DataErrorFlag bits in `error_flags`.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_MODELLAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_MODELLAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

// An i64 or i32 device array: token ids, labels or cu_seqlens.
struct DeviceIndices {
  const void* data = nullptr;
  bool is_i64 = true;
};

// Where rope reads cos and sin for element e of x: both broadcast to x's
// shape, so their offsets come from x's multi-index and their strides (0
// where they repeat). `shape` holds x's dims with those merged over which
// cos and sin advance as one, and without dims of 1.
inline constexpr int kMaxRopeRank = 8;
struct RopeBroadcast {
  int rank = 0;
  int64_t shape[kMaxRopeRank] = {};  // x's shape
  int64_t cos_strides[kMaxRopeRank] = {};
  int64_t sin_strides[kMaxRopeRank] = {};
  int64_t elements = 0;  // of x
  int64_t half = 0;      // x's last dim / 2
};

// attention's operands: q [B, Hq, S, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv]
// and cu_seqlens [num_offsets] when cu_seqlens.data is not null.
struct AttentionShape {
  int64_t batch = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;
  float scale = 1.0f;
  bool causal = false;
  DeviceIndices cu_seqlens;
  int64_t num_offsets = 0;
};

// out[t] = table[ids[t]] for `tokens` rows of `row_elements` elements of
// `element_bytes` (1, 2, 4 or 8) bytes; a row whose id is outside
// [0, vocab) is zeroed and flagged kTokenIdOutOfRange.
void LaunchEmbedding(const void* table, DeviceIndices ids, void* out, int64_t tokens,
                     int64_t vocab, int64_t row_elements, int element_bytes,
                     unsigned* error_flags, cudaStream_t stream);

void LaunchRmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t dim,
                   float epsilon, cudaStream_t stream);

void LaunchRope(const float* x, const float* cos, const float* sin, float* y,
                const RopeBroadcast& broadcast, cudaStream_t stream);

// gate, up and y all f32, or all bf16 (`bf16`; computed in f32, y rounded).
void LaunchSwiglu(const void* gate, const void* up, void* y, bool bf16, int64_t elements,
                  cudaStream_t stream);

// Flags kBadShapeData unless cu_seqlens holds non-decreasing offsets within
// [0, tokens]. The attention launchers run it first.
void LaunchCheckCuSeqlens(DeviceIndices cu_seqlens, int64_t num_offsets, int64_t tokens,
                          unsigned* error_flags, cudaStream_t stream);

void LaunchAttention(const float* q, const float* k, const float* v, float* out,
                     const AttentionShape& shape, unsigned* error_flags, cudaStream_t stream);

// `reduction` is LossReduction's value: 0 mean, 1 sum (out is one float),
// 2 none (out has one float per row). A label outside [0, vocab) that is not
// ignore_index is flagged kLabelOutOfRange.
void LaunchCrossEntropy(const float* logits, DeviceIndices labels, float* out, int64_t rows,
                        int64_t vocab, int64_t ignore_index, int reduction,
                        unsigned* error_flags, cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_MODELLAUNCH_H
