// Device code of Model.cpp. fp32 throughout, with fp32 block reductions; the
// CPU twins accumulate in double, so results agree to fp32 rounding.

#include "runtime/kernels/cuda/ModelLaunch.h"

#include <cstdint>

#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/ModelDevice.cuh"

namespace veomni::runtime::cuda {
namespace {

using model::kAttentionThreads;
using model::kKeyTile;
using model::kThreads;

template <typename Element>
__global__ void EmbeddingKernel(const Element* table, DeviceIndices ids, Element* out,
                                int64_t tokens, int64_t vocab, int64_t width,
                                unsigned* error_flags) {
  int64_t elements = tokens * width;
  for (int64_t e = model::GlobalThread(); e < elements; e += model::GridThreads()) {
    int64_t t = e / width;
    int64_t c = e % width;
    int64_t id = model::LoadIndex(ids, t);
    if (id < 0 || id >= vocab) {
      if (c == 0) atomicOr(error_flags, kTokenIdOutOfRange);
      out[e] = Element(0);
      continue;
    }
    out[e] = table[id * width + c];
  }
}

template <typename Element>
void LaunchEmbeddingOf(const void* table, DeviceIndices ids, void* out, int64_t tokens,
                       int64_t vocab, int64_t width, unsigned* error_flags,
                       cudaStream_t stream) {
  EmbeddingKernel<Element><<<model::BlocksFor(tokens * width, kThreads), kThreads, 0, stream>>>(
      static_cast<const Element*>(table), ids, static_cast<Element*>(out), tokens, vocab, width,
      error_flags);
}

// One block per row.
__global__ void RmsNormKernel(const float* x, const float* w, float* y, int64_t rows,
                              int64_t dim, float epsilon) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x_row = x + r * dim;
    float sum_squares = 0.0f;
    for (int64_t j = threadIdx.x; j < dim; j += kThreads) sum_squares += x_row[j] * x_row[j];
    sum_squares = model::BlockSum<kThreads>(sum_squares);
    float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(dim) + epsilon);
    for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
      y[r * dim + j] = x_row[j] * inv_rms * w[j];
    }
  }
}

// Rows up to kWarpRowMax long (per-head q/k norms: 128) take a warp each; a
// block per row would leave most of its threads idle and pay two barriers
// per row.
__global__ void RmsNormWarpKernel(const float* x, const float* w, float* y, int64_t rows,
                                  int64_t dim, float epsilon) {
  const int lane = threadIdx.x % model::kWarpSize;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / model::kWarpSize);
  for (int64_t r = model::GlobalThread() / model::kWarpSize; r < rows; r += warps) {
    const float* x_row = x + r * dim;
    float sum_squares = 0.0f;
    for (int64_t j = lane; j < dim; j += model::kWarpSize) sum_squares += x_row[j] * x_row[j];
    sum_squares = model::WarpSum(sum_squares);
    float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(dim) + epsilon);
    for (int64_t j = lane; j < dim; j += model::kWarpSize) {
      y[r * dim + j] = x_row[j] * inv_rms * w[j];
    }
  }
}

template <typename Index>
__global__ void RopeKernel(const float* x, const float* cos, const float* sin, float* y,
                           RopeBroadcast broadcast) {
  const Index half = static_cast<Index>(broadcast.half);
  for (int64_t e = model::GlobalThread(); e < broadcast.elements; e += model::GridThreads()) {
    const Index i = static_cast<Index>(e);
    float rotated = i % (2 * half) < half ? -x[e + half] : x[e - half];
    y[e] = x[e] * cos[model::RopeOffset(broadcast, broadcast.cos_strides, i)] +
           rotated * sin[model::RopeOffset(broadcast, broadcast.sin_strides, i)];
  }
}

template <typename T>
__global__ void SwigluKernel(const T* gate, const T* up, T* y, int64_t elements) {
  for (int64_t e = model::GlobalThread(); e < elements; e += model::GridThreads()) {
    float g = model::LoadFloat(gate, e);
    model::StoreFloat(y, e, g / (1.0f + expf(-g)) * model::LoadFloat(up, e));
  }
}

__global__ void CheckCuSeqlensKernel(DeviceIndices cu_seqlens, int64_t num_offsets,
                                     int64_t tokens, unsigned* error_flags) {
  for (int64_t d = model::GlobalThread(); d < num_offsets; d += model::GridThreads()) {
    int64_t offset = model::LoadIndex(cu_seqlens, d);
    int64_t previous = d == 0 ? 0 : model::LoadIndex(cu_seqlens, d - 1);
    if (offset < previous || offset > tokens) atomicOr(error_flags, kBadShapeData);
  }
}

// One block per query row (b, h, i), streaming its visible keys in tiles of
// kKeyTile with an online softmax. Shared memory: the query row, the output
// accumulator and one tile of scores and weights. Every thread computes the
// running max and sum from the same shared values, so they agree exactly.
__global__ void AttentionKernel(const float* q, const float* k, const float* v, float* out,
                                AttentionShape shape) {
  extern __shared__ float shared[];
  const int64_t d = shape.head_dim;
  const int64_t dv = shape.value_dim;
  float* q_row = shared;
  float* accumulator = q_row + d;
  float* scores = accumulator + dv;
  float* weights = scores + kKeyTile;
  const int64_t rows = shape.batch * shape.q_heads * shape.q_len;
  const int64_t group = shape.q_heads / shape.kv_heads;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    int64_t i = row % shape.q_len;
    int64_t h = row / shape.q_len % shape.q_heads;
    int64_t b = row / (shape.q_len * shape.q_heads);
    int64_t kv_head = h / group;
    model::KeyRange keys = model::VisibleKeys(shape, b, i);
    for (int64_t c = threadIdx.x; c < d; c += kAttentionThreads) q_row[c] = q[row * d + c];
    for (int64_t c = threadIdx.x; c < dv; c += kAttentionThreads) accumulator[c] = 0.0f;
    __syncthreads();
    float running_max = -INFINITY;
    float running_sum = 0.0f;
    for (int64_t tile = keys.begin; tile < keys.end; tile += kKeyTile) {
      int count = static_cast<int>(min(static_cast<int64_t>(kKeyTile), keys.end - tile));
      model::ScoreTile(shape, kv_head, q_row, k, nullptr, nullptr, tile, count, scores,
                       nullptr);
      __syncthreads();
      float tile_max = -INFINITY;
      for (int t = 0; t < count; ++t) tile_max = fmaxf(tile_max, scores[t]);
      float new_max = fmaxf(running_max, tile_max);
      // The first tile has nothing to rescale (and exp(-inf - -inf) is NaN).
      float rescale = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
      for (int t = threadIdx.x; t < count; t += kAttentionThreads) {
        weights[t] = expf(scores[t] - new_max);
      }
      __syncthreads();
      float tile_sum = 0.0f;
      for (int t = 0; t < count; ++t) tile_sum += weights[t];
      running_sum = running_sum * rescale + tile_sum;
      running_max = new_max;
      for (int64_t c = threadIdx.x; c < dv; c += kAttentionThreads) {
        float sum = 0.0f;
        for (int t = 0; t < count; ++t) {
          sum += weights[t] * v[model::KeyOffset(shape, kv_head, tile + t, dv) + c];
        }
        accumulator[c] = accumulator[c] * rescale + sum;
      }
      // The next tile overwrites scores and weights.
      __syncthreads();
    }
    bool sees_keys = keys.begin < keys.end;
    for (int64_t c = threadIdx.x; c < dv; c += kAttentionThreads) {
      out[row * dv + c] = sees_keys ? accumulator[c] / running_sum : 0.0f;
    }
    // The next row overwrites q_row.
    __syncthreads();
  }
}

// One block per row; ignored rows add nothing. For mean and sum, `out` holds
// the running total (zeroed before).
__global__ void CrossEntropyKernel(const float* logits, DeviceIndices labels, float* out,
                                   int64_t rows, int64_t vocab, int64_t ignore_index,
                                   bool per_token, unsigned* error_flags) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t label = model::LoadIndex(labels, r);
    bool ignored = label == ignore_index;
    float loss = 0.0f;
    if (!ignored) {
      if (label < 0 || label >= vocab) {
        if (threadIdx.x == 0) atomicOr(error_flags, kLabelOutOfRange);
        loss = NAN;
      } else {
        const float* row = logits + r * vocab;
        loss = model::RowLogSumExp<kThreads>(row, vocab) - row[label];
      }
    }
    if (threadIdx.x == 0) {
      if (per_token) {
        out[r] = loss;
      } else if (!ignored) {
        atomicAdd(out, loss);
      }
    }
  }
}

// The summed loss over the counted rows; NaN when none is counted, as PyTorch.
__global__ void MeanLossKernel(DeviceIndices labels, float* out, int64_t rows,
                               int64_t ignore_index) {
  int64_t counted = model::CountedLabels<kThreads>(labels, rows, ignore_index);
  if (threadIdx.x == 0) out[0] = counted == 0 ? NAN : out[0] / static_cast<float>(counted);
}

}  // namespace

void LaunchEmbedding(const void* table, DeviceIndices ids, void* out, int64_t tokens,
                     int64_t vocab, int64_t row_elements, int element_bytes,
                     unsigned* error_flags, cudaStream_t stream) {
  if (tokens * row_elements == 0) return;
  switch (element_bytes) {
    case 1:
      return LaunchEmbeddingOf<uint8_t>(table, ids, out, tokens, vocab, row_elements,
                                        error_flags, stream);
    case 2:
      return LaunchEmbeddingOf<uint16_t>(table, ids, out, tokens, vocab, row_elements,
                                         error_flags, stream);
    case 4:
      return LaunchEmbeddingOf<uint32_t>(table, ids, out, tokens, vocab, row_elements,
                                         error_flags, stream);
    default:
      return LaunchEmbeddingOf<uint64_t>(table, ids, out, tokens, vocab, row_elements,
                                         error_flags, stream);
  }
}

void LaunchRmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t dim,
                   float epsilon, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return;
  if (dim <= model::kWarpRowMax) {
    RmsNormWarpKernel<<<model::BlocksFor(rows, kThreads / model::kWarpSize), kThreads, 0,
                        stream>>>(x, w, y, rows, dim, epsilon);
    return;
  }
  RmsNormKernel<<<model::BlocksFor(rows, 1), kThreads, 0, stream>>>(x, w, y, rows, dim, epsilon);
}

void LaunchRope(const float* x, const float* cos, const float* sin, float* y,
                const RopeBroadcast& broadcast, cudaStream_t stream) {
  if (broadcast.elements == 0) return;
  const unsigned blocks = model::BlocksFor(broadcast.elements, kThreads);
  if (broadcast.elements < (int64_t{1} << 31)) {
    RopeKernel<uint32_t><<<blocks, kThreads, 0, stream>>>(x, cos, sin, y, broadcast);
  } else {
    RopeKernel<uint64_t><<<blocks, kThreads, 0, stream>>>(x, cos, sin, y, broadcast);
  }
}

void LaunchSwiglu(const void* gate, const void* up, void* y, bool bf16, int64_t elements,
                  cudaStream_t stream) {
  if (elements == 0) return;
  const unsigned blocks = model::BlocksFor(elements, kThreads);
  if (bf16) {
    using T = __nv_bfloat16;
    SwigluKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(gate),
                                                  static_cast<const T*>(up), static_cast<T*>(y),
                                                  elements);
  } else {
    SwigluKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(gate),
                                                  static_cast<const float*>(up),
                                                  static_cast<float*>(y), elements);
  }
}

void LaunchCheckCuSeqlens(DeviceIndices cu_seqlens, int64_t num_offsets, int64_t tokens,
                          unsigned* error_flags, cudaStream_t stream) {
  if (num_offsets == 0) return;
  CheckCuSeqlensKernel<<<model::BlocksFor(num_offsets, kThreads), kThreads, 0, stream>>>(
      cu_seqlens, num_offsets, tokens, error_flags);
}

void LaunchAttention(const float* q, const float* k, const float* v, float* out,
                     const AttentionShape& shape, unsigned* error_flags, cudaStream_t stream) {
  if (shape.cu_seqlens.data != nullptr) {
    LaunchCheckCuSeqlens(shape.cu_seqlens, shape.num_offsets, shape.batch * shape.q_len,
                         error_flags, stream);
  }
  int64_t rows = shape.batch * shape.q_heads * shape.q_len;
  if (rows == 0 || shape.value_dim == 0) return;
  size_t shared_bytes = (shape.head_dim + shape.value_dim + 2 * kKeyTile) * sizeof(float);
  model::AllowSharedBytes(AttentionKernel, shared_bytes);
  AttentionKernel<<<model::BlocksFor(rows, 1), kAttentionThreads, shared_bytes, stream>>>(
      q, k, v, out, shape);
}

void LaunchCrossEntropy(const float* logits, DeviceIndices labels, float* out, int64_t rows,
                        int64_t vocab, int64_t ignore_index, int reduction,
                        unsigned* error_flags, cudaStream_t stream) {
  constexpr int kMean = 0;
  constexpr int kNone = 2;
  bool per_token = reduction == kNone;
  if (!per_token) cudaMemsetAsync(out, 0, sizeof(float), stream);
  if (rows > 0) {
    CrossEntropyKernel<<<model::BlocksFor(rows, 1), kThreads, 0, stream>>>(
        logits, labels, out, rows, vocab, ignore_index, per_token, error_flags);
  }
  if (reduction == kMean) {
    MeanLossKernel<<<1, kThreads, 0, stream>>>(labels, out, rows, ignore_index);
  }
}

}  // namespace veomni::runtime::cuda
