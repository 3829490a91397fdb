// Device code of ModelGrad.cpp. Each kernel recomputes what it needs from the
// forward inputs, as the CPU twins do, in fp32 with fp32 block reductions.

#include "runtime/kernels/cuda/ModelGradLaunch.h"

#include <cstdint>

#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/ModelDevice.cuh"

namespace veomni::runtime::cuda {
namespace {

using model::kAttentionThreads;
using model::kKeyTile;
using model::kThreads;

// Rows past this many blocks loop, so that dw takes at most this many atomics
// per column.
constexpr int64_t kRmsNormGradBlocks = 1024;

// Each block takes rows blockIdx.x, + gridDim.x, ... and keeps its partial dw
// in shared memory, column j owned by thread j % kThreads (no races), then
// adds it to dw once.
__global__ void RmsNormGradKernel(const float* x, const float* w, const float* dy, float* dx,
                                  float* dw, int64_t rows, int64_t dim, float epsilon) {
  extern __shared__ float dw_partial[];
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) dw_partial[j] = 0.0f;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x_row = x + r * dim;
    const float* dy_row = dy + r * dim;
    float sum_squares = 0.0f;
    float dot = 0.0f;  // sum of dy * w * x
    for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
      sum_squares += x_row[j] * x_row[j];
      dot += dy_row[j] * w[j] * x_row[j];
    }
    sum_squares = model::BlockSum<kThreads>(sum_squares);
    dot = model::BlockSum<kThreads>(dot);
    float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(dim) + epsilon);
    float correction = inv_rms * inv_rms * dot / static_cast<float>(dim);
    for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
      dx[r * dim + j] = inv_rms * (dy_row[j] * w[j] - x_row[j] * correction);
      dw_partial[j] += dy_row[j] * x_row[j] * inv_rms;
    }
  }
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) atomicAdd(&dw[j], dw_partial[j]);
}

// The same for rows up to kWarpRowMax long, a warp per row (see
// RmsNormWarpKernel); each lane keeps the dw columns it owns (j = lane +
// 32 i) in registers, and the block's warps add theirs in shared memory.
__global__ void RmsNormGradWarpKernel(const float* x, const float* w, const float* dy, float* dx,
                                      float* dw, int64_t rows, int64_t dim, float epsilon) {
  constexpr int kColumns = model::kWarpRowMax / model::kWarpSize;
  __shared__ float dw_block[model::kWarpRowMax];
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) dw_block[j] = 0.0f;
  __syncthreads();
  const int lane = threadIdx.x % model::kWarpSize;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / model::kWarpSize);
  float dw_lane[kColumns] = {};
  for (int64_t r = model::GlobalThread() / model::kWarpSize; r < rows; r += warps) {
    const float* x_row = x + r * dim;
    const float* dy_row = dy + r * dim;
    float sum_squares = 0.0f;
    float dot = 0.0f;  // sum of dy * w * x
    for (int64_t j = lane; j < dim; j += model::kWarpSize) {
      sum_squares += x_row[j] * x_row[j];
      dot += dy_row[j] * w[j] * x_row[j];
    }
    sum_squares = model::WarpSum(sum_squares);
    dot = model::WarpSum(dot);
    float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(dim) + epsilon);
    float correction = inv_rms * inv_rms * dot / static_cast<float>(dim);
#pragma unroll
    for (int i = 0; i < kColumns; ++i) {
      int64_t j = lane + i * model::kWarpSize;
      if (j < dim) {
        dx[r * dim + j] = inv_rms * (dy_row[j] * w[j] - x_row[j] * correction);
        dw_lane[i] += dy_row[j] * x_row[j] * inv_rms;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kColumns; ++i) {
    int64_t j = lane + i * model::kWarpSize;
    if (j < dim) atomicAdd(&dw_block[j], dw_lane[i]);
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) atomicAdd(&dw[j], dw_block[j]);
}

// The transpose of rope: dx = dy*cos + rotate_half^T(dy*sin), with sin read
// at the partner position.
template <typename Index>
__global__ void RopeGradKernel(const float* dy, const float* cos, const float* sin, float* dx,
                               RopeBroadcast broadcast) {
  const Index half = static_cast<Index>(broadcast.half);
  for (int64_t e = model::GlobalThread(); e < broadcast.elements; e += model::GridThreads()) {
    const Index i = static_cast<Index>(e);
    const Index partner = i % (2 * half) < half ? i + half : i - half;
    float rotated = dy[partner] * sin[model::RopeOffset(broadcast, broadcast.sin_strides, partner)];
    if (partner < i) rotated = -rotated;
    dx[e] = dy[e] * cos[model::RopeOffset(broadcast, broadcast.cos_strides, i)] + rotated;
  }
}

template <typename T>
__global__ void SwigluGradKernel(const T* gate, const T* up, const float* dy, float* dgate,
                                 float* dup, int64_t elements) {
  for (int64_t e = model::GlobalThread(); e < elements; e += model::GridThreads()) {
    float x = model::LoadFloat(gate, e);
    float s = 1.0f / (1.0f + expf(-x));
    dgate[e] = dy[e] * model::LoadFloat(up, e) * s * (1.0f + x * (1.0f - s));
    dup[e] = dy[e] * x * s;
  }
}

// One block per query row (b, h, i). A first pass over the visible keys finds
// the softmax max and sum and sum(p * dp) online (dp = dout . v); a second
// recomputes p and ds = p * (dp - sum(p * dp)) * scale per key tile, adds
// ds k to the row's dq and adds ds q and p dout to dk and dv atomically.
__global__ void AttentionGradKernel(const float* q, const float* k, const float* v,
                                    const float* dout, float* dq, float* dk, float* dv,
                                    AttentionShape shape) {
  extern __shared__ float shared[];
  const int64_t d = shape.head_dim;
  const int64_t dv_width = shape.value_dim;
  float* q_row = shared;
  float* dq_row = q_row + d;
  float* dout_row = dq_row + d;
  float* scores = dout_row + dv_width;
  float* value_dots = scores + kKeyTile;   // dp
  float* weights = value_dots + kKeyTile;  // exp(s - max), then p
  float* score_grads = weights + kKeyTile;  // ds
  const int64_t rows = shape.batch * shape.q_heads * shape.q_len;
  const int64_t group = shape.q_heads / shape.kv_heads;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    int64_t i = row % shape.q_len;
    int64_t h = row / shape.q_len % shape.q_heads;
    int64_t b = row / (shape.q_len * shape.q_heads);
    int64_t kv_head = h / group;
    model::KeyRange keys = model::VisibleKeys(shape, b, i);
    for (int64_t c = threadIdx.x; c < d; c += kAttentionThreads) {
      q_row[c] = q[row * d + c];
      dq_row[c] = 0.0f;
    }
    for (int64_t c = threadIdx.x; c < dv_width; c += kAttentionThreads) {
      dout_row[c] = dout[row * dv_width + c];
    }
    __syncthreads();

    float running_max = -INFINITY;
    float running_sum = 0.0f;
    float running_dot = 0.0f;  // sum of exp(s - running_max) * dp
    for (int64_t tile = keys.begin; tile < keys.end; tile += kKeyTile) {
      int count = static_cast<int>(min(static_cast<int64_t>(kKeyTile), keys.end - tile));
      model::ScoreTile(shape, kv_head, q_row, k, dout_row, v, tile, count, scores, value_dots);
      __syncthreads();
      float tile_max = -INFINITY;
      for (int t = 0; t < count; ++t) tile_max = fmaxf(tile_max, scores[t]);
      float new_max = fmaxf(running_max, tile_max);
      float rescale = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
      for (int t = threadIdx.x; t < count; t += kAttentionThreads) {
        weights[t] = expf(scores[t] - new_max);
      }
      __syncthreads();
      float tile_sum = 0.0f;
      float tile_dot = 0.0f;
      for (int t = 0; t < count; ++t) {
        tile_sum += weights[t];
        tile_dot += weights[t] * value_dots[t];
      }
      running_sum = running_sum * rescale + tile_sum;
      running_dot = running_dot * rescale + tile_dot;
      running_max = new_max;
      __syncthreads();
    }
    float expected_dp = running_dot / running_sum;

    for (int64_t tile = keys.begin; tile < keys.end; tile += kKeyTile) {
      int count = static_cast<int>(min(static_cast<int64_t>(kKeyTile), keys.end - tile));
      model::ScoreTile(shape, kv_head, q_row, k, dout_row, v, tile, count, scores, value_dots);
      __syncthreads();
      for (int t = threadIdx.x; t < count; t += kAttentionThreads) {
        float p = expf(scores[t] - running_max) / running_sum;
        weights[t] = p;
        score_grads[t] = p * (value_dots[t] - expected_dp) * shape.scale;
      }
      __syncthreads();
      for (int64_t c = threadIdx.x; c < d; c += kAttentionThreads) {
        float sum = 0.0f;
        for (int t = 0; t < count; ++t) {
          sum += score_grads[t] * k[model::KeyOffset(shape, kv_head, tile + t, d) + c];
        }
        dq_row[c] += sum;
      }
      for (int64_t e = threadIdx.x; e < count * d; e += kAttentionThreads) {
        int64_t t = e / d;
        int64_t c = e % d;
        atomicAdd(&dk[model::KeyOffset(shape, kv_head, tile + t, d) + c],
                  score_grads[t] * q_row[c]);
      }
      for (int64_t e = threadIdx.x; e < count * dv_width; e += kAttentionThreads) {
        int64_t t = e / dv_width;
        int64_t c = e % dv_width;
        atomicAdd(&dv[model::KeyOffset(shape, kv_head, tile + t, dv_width) + c],
                  weights[t] * dout_row[c]);
      }
      // The next tile overwrites scores, weights and score_grads.
      __syncthreads();
    }
    for (int64_t c = threadIdx.x; c < d; c += kAttentionThreads) dq[row * d + c] = dq_row[c];
    // The next row overwrites q_row, dq_row and dout_row.
    __syncthreads();
  }
}

// One block per row: (softmax - onehot(label)) * dloss, divided by the
// counted rows for mean; ignored rows get zeros. Computed in f32, stored as
// Out (f32, or bf16 rounded to nearest even).
template <typename Out>
__global__ void CrossEntropyGradKernel(const float* logits, DeviceIndices labels,
                                       const float* dloss, Out* dlogits, int64_t rows,
                                       int64_t vocab, int64_t ignore_index, int reduction,
                                       unsigned* error_flags) {
  constexpr int kMean = 0;
  constexpr int kNone = 2;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t label = model::LoadIndex(labels, r);
    Out* dx_row = dlogits + r * vocab;
    if (label == ignore_index) {
      for (int64_t c = threadIdx.x; c < vocab; c += kThreads) dx_row[c] = Out(0.0f);
      continue;
    }
    if (label < 0 || label >= vocab) {
      if (threadIdx.x == 0) atomicOr(error_flags, kLabelOutOfRange);
      for (int64_t c = threadIdx.x; c < vocab; c += kThreads) dx_row[c] = Out(NAN);
      continue;
    }
    float scale = reduction == kNone ? dloss[r] : dloss[0];
    // Every block counts the labels itself: there is no scratch to share a
    // count in, and the labels are a small read next to a vocabulary row.
    // At least this row counts.
    if (reduction == kMean) {
      scale /= static_cast<float>(model::CountedLabels<kThreads>(labels, rows, ignore_index));
    }
    const float* row = logits + r * vocab;
    float log_sum_exp = model::RowLogSumExp<kThreads>(row, vocab);
    for (int64_t c = threadIdx.x; c < vocab; c += kThreads) {
      float onehot = c == label ? 1.0f : 0.0f;
      dx_row[c] = Out((expf(row[c] - log_sum_exp) - onehot) * scale);
    }
  }
}

__global__ void EmbeddingGradKernel(DeviceIndices ids, const float* dy, float* dtable,
                                    int64_t tokens, int64_t vocab, int64_t hidden,
                                    unsigned* error_flags) {
  int64_t elements = tokens * hidden;
  for (int64_t e = model::GlobalThread(); e < elements; e += model::GridThreads()) {
    int64_t t = e / hidden;
    int64_t c = e % hidden;
    int64_t id = model::LoadIndex(ids, t);
    if (id < 0 || id >= vocab) {
      if (c == 0) atomicOr(error_flags, kTokenIdOutOfRange);
      continue;
    }
    atomicAdd(&dtable[id * hidden + c], dy[e]);
  }
}

}  // namespace

void LaunchRmsNormGrad(const float* x, const float* w, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t dim, float epsilon, cudaStream_t stream) {
  if (dim == 0) return;
  cudaMemsetAsync(dw, 0, dim * sizeof(float), stream);
  if (rows == 0) return;
  if (dim <= model::kWarpRowMax) {
    constexpr int64_t kWarps = kThreads / model::kWarpSize;
    unsigned blocks = static_cast<unsigned>(
        rows < kRmsNormGradBlocks * kWarps ? (rows + kWarps - 1) / kWarps : kRmsNormGradBlocks);
    RmsNormGradWarpKernel<<<blocks, kThreads, 0, stream>>>(x, w, dy, dx, dw, rows, dim, epsilon);
    return;
  }
  size_t shared_bytes = dim * sizeof(float);
  model::AllowSharedBytes(RmsNormGradKernel, shared_bytes);
  unsigned blocks = static_cast<unsigned>(rows < kRmsNormGradBlocks ? rows : kRmsNormGradBlocks);
  RmsNormGradKernel<<<blocks, kThreads, shared_bytes, stream>>>(x, w, dy, dx, dw, rows, dim,
                                                                epsilon);
}

void LaunchRopeGrad(const float* dy, const float* cos, const float* sin, float* dx,
                    const RopeBroadcast& broadcast, cudaStream_t stream) {
  if (broadcast.elements == 0) return;
  const unsigned blocks = model::BlocksFor(broadcast.elements, kThreads);
  if (broadcast.elements < (int64_t{1} << 31)) {
    RopeGradKernel<uint32_t><<<blocks, kThreads, 0, stream>>>(dy, cos, sin, dx, broadcast);
  } else {
    RopeGradKernel<uint64_t><<<blocks, kThreads, 0, stream>>>(dy, cos, sin, dx, broadcast);
  }
}

void LaunchSwigluGrad(const void* gate, const void* up, bool bf16, const float* dy, float* dgate,
                      float* dup, int64_t elements, cudaStream_t stream) {
  if (elements == 0) return;
  const unsigned blocks = model::BlocksFor(elements, kThreads);
  if (bf16) {
    using T = __nv_bfloat16;
    SwigluGradKernel<<<blocks, kThreads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), dy, dgate, dup, elements);
  } else {
    SwigluGradKernel<<<blocks, kThreads, 0, stream>>>(
        static_cast<const float*>(gate), static_cast<const float*>(up), dy, dgate, dup, elements);
  }
}

void LaunchAttentionGrad(const float* q, const float* k, const float* v, const float* dout,
                         float* dq, float* dk, float* dv, const AttentionShape& shape,
                         unsigned* error_flags, cudaStream_t stream) {
  if (shape.cu_seqlens.data != nullptr) {
    LaunchCheckCuSeqlens(shape.cu_seqlens, shape.num_offsets, shape.batch * shape.q_len,
                         error_flags, stream);
  }
  int64_t kv_rows = shape.batch * shape.kv_heads * shape.kv_len;
  cudaMemsetAsync(dk, 0, kv_rows * shape.head_dim * sizeof(float), stream);
  cudaMemsetAsync(dv, 0, kv_rows * shape.value_dim * sizeof(float), stream);
  int64_t rows = shape.batch * shape.q_heads * shape.q_len;
  if (rows == 0) return;
  size_t shared_bytes = (2 * shape.head_dim + shape.value_dim + 4 * kKeyTile) * sizeof(float);
  model::AllowSharedBytes(AttentionGradKernel, shared_bytes);
  AttentionGradKernel<<<model::BlocksFor(rows, 1), kAttentionThreads, shared_bytes, stream>>>(
      q, k, v, dout, dq, dk, dv, shape);
}

void LaunchCrossEntropyGrad(const float* logits, DeviceIndices labels, const float* dloss,
                            void* dlogits, bool bf16_dlogits, int64_t rows, int64_t vocab,
                            int64_t ignore_index, int reduction, unsigned* error_flags,
                            cudaStream_t stream) {
  if (rows == 0) return;
  if (bf16_dlogits) {
    CrossEntropyGradKernel<<<model::BlocksFor(rows, 1), kThreads, 0, stream>>>(
        logits, labels, dloss, static_cast<__nv_bfloat16*>(dlogits), rows, vocab, ignore_index,
        reduction, error_flags);
  } else {
    CrossEntropyGradKernel<<<model::BlocksFor(rows, 1), kThreads, 0, stream>>>(
        logits, labels, dloss, static_cast<float*>(dlogits), rows, vocab, ignore_index,
        reduction, error_flags);
  }
}

void LaunchEmbeddingGrad(DeviceIndices ids, const float* dy, float* dtable, int64_t tokens,
                         int64_t vocab, int64_t hidden, unsigned* error_flags,
                         cudaStream_t stream) {
  if (vocab * hidden > 0) cudaMemsetAsync(dtable, 0, vocab * hidden * sizeof(float), stream);
  if (tokens * hidden == 0) return;
  EmbeddingGradKernel<<<model::BlocksFor(tokens * hidden, kThreads), kThreads, 0, stream>>>(
      ids, dy, dtable, tokens, vocab, hidden, error_flags);
}

}  // namespace veomni::runtime::cuda
