// Device helpers shared by ModelLaunch.cu and ModelGradLaunch.cu: index loads,
// launch geometry, block reductions and the attention mask, so the forward
// and backward kernels of one op read their operands the same way.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_MODELDEVICE_CUH
#define VEOMNI_RUNTIME_KERNELS_CUDA_MODELDEVICE_CUH

#include <cstdint>

#include <cub/cub.cuh>
#include <cuda_bf16.h>

#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/ModelLaunch.h"

namespace veomni::runtime::cuda::model {

// Elements kept as f32 or bf16, computed in f32.
__device__ inline float LoadFloat(const float* p, int64_t i) { return p[i]; }
__device__ inline float LoadFloat(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void StoreFloat(float* p, int64_t i, float v) { p[i] = v; }
__device__ inline void StoreFloat(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Threads of the elementwise and row kernels.
inline constexpr int kThreads = 256;
inline constexpr int kWarpSize = 32;
// Rows up to this long are normalized a warp per row (RmsNorm*WarpKernel).
inline constexpr int kWarpRowMax = 512;
// Row kernels loop over rows past this many blocks (gridDim.x allows 2^31 - 1,
// but more blocks than this only queue).
inline constexpr int64_t kMaxBlocks = int64_t{1} << 20;
// Dynamic shared memory a kernel gets without opting in.
inline constexpr size_t kDefaultSharedBytes = 48 * 1024;

inline unsigned BlocksFor(int64_t work, int64_t per_block) {
  int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// Lets `kernel` use `bytes` of dynamic shared memory (a failure surfaces as
// the launch error).
template <typename Kernel>
void AllowSharedBytes(Kernel* kernel, size_t bytes) {
  if (bytes > kDefaultSharedBytes) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
  }
}

__device__ inline int64_t LoadIndex(DeviceIndices indices, int64_t i) {
  if (indices.is_i64) return static_cast<const int64_t*>(indices.data)[i];
  return static_cast<const int32_t*>(indices.data)[i];
}

__device__ inline int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t GridThreads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// max that propagates NaN from either side, as the CPU's LogSumExp does.
struct NanMax {
  __device__ float operator()(float a, float b) const { return (isnan(a) || a > b) ? a : b; }
};

// Sum or max of `value` over the block, returned to every thread. The trailing
// barrier lets the next call reuse the shared storage.
template <int kBlock>
__device__ float BlockSum(float value) {
  using Reduce = cub::BlockReduce<float, kBlock>;
  __shared__ typename Reduce::TempStorage storage;
  __shared__ float result;
  float total = Reduce(storage).Sum(value);
  if (threadIdx.x == 0) result = total;
  __syncthreads();
  float broadcast = result;
  __syncthreads();
  return broadcast;
}
template <int kBlock>
__device__ float BlockMax(float value) {
  using Reduce = cub::BlockReduce<float, kBlock>;
  __shared__ typename Reduce::TempStorage storage;
  __shared__ float result;
  float reduced = Reduce(storage).Reduce(value, NanMax());
  if (threadIdx.x == 0) result = reduced;
  __syncthreads();
  float broadcast = result;
  __syncthreads();
  return broadcast;
}

// log(sum(exp(row))) shifted by the row's max, as the CPU's LogSumExp: an
// infinite max is returned as is (no inf - inf), a NaN propagates.
// One read of the row (a vocabulary row is far larger than the caches):
// each thread keeps its running max m and its sum of exp(x - m), rescaled
// when m grows; the block then rescales every thread's sum to the row's max.
template <int kBlock>
__device__ float RowLogSumExp(const float* row, int64_t count) {
  float m = -INFINITY, sum = 0.0f;
  for (int64_t j = threadIdx.x; j < count; j += kBlock) {
    const float x = row[j];
    if (isnan(x) || isnan(m)) {
      m = NAN;  // the block's max then propagates it
    } else if (x > m) {
      sum = (m == -INFINITY ? 0.0f : sum * expf(m - x)) + 1.0f;
      m = x;
    } else if (x > -INFINITY) {
      sum += expf(x - m);  // m = +inf: the max is returned below, sum unused
    }
  }
  const float row_max = BlockMax<kBlock>(m);
  if (isnan(row_max) || isinf(row_max)) return row_max;
  return row_max + logf(BlockSum<kBlock>(m == -INFINITY ? 0.0f : sum * expf(m - row_max)));
}

// Number of labels other than ignore_index, returned to every thread.
template <int kBlock>
__device__ int64_t CountedLabels(DeviceIndices labels, int64_t rows, int64_t ignore_index) {
  using Reduce = cub::BlockReduce<long long, kBlock>;
  __shared__ typename Reduce::TempStorage storage;
  __shared__ long long result;
  long long counted = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kBlock) {
    if (LoadIndex(labels, r) != ignore_index) ++counted;
  }
  long long total = Reduce(storage).Sum(counted);
  if (threadIdx.x == 0) result = total;
  __syncthreads();
  long long broadcast = result;
  __syncthreads();
  return broadcast;
}

__device__ inline float WarpSum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Offset of element e's cos or sin value under `strides`. `Index` is
// uint32_t when x has fewer than 2^31 elements: 32-bit divisions, several
// times cheaper than 64-bit ones in these memory-bound kernels.
template <typename Index>
__device__ inline int64_t RopeOffset(const RopeBroadcast& broadcast, const int64_t* strides,
                                     Index e) {
  int64_t offset = 0;
  for (int d = broadcast.rank - 1; d >= 0; --d) {
    const Index size = static_cast<Index>(broadcast.shape[d]);
    offset += static_cast<int64_t>(e % size) * strides[d];
    e /= size;
  }
  return offset;
}

// Threads and key tile of the attention kernels: one block per query row, one
// warp per key for the dot products.
inline constexpr int kAttentionThreads = 128;
inline constexpr int kAttentionWarps = kAttentionThreads / 32;
inline constexpr int kKeyTile = 64;

struct KeyRange {
  int64_t begin;
  int64_t end;  // empty when end <= begin
};

// The keys query (b, i) sees in the flattened key axis, as the CPU's
// AttentionGeometry::VisibleKeys. Offsets that the check kernel flags are
// clamped to [0, B * S] so that they never read outside k and v.
__device__ inline KeyRange VisibleKeys(const AttentionShape& shape, int64_t b, int64_t i) {
  if (shape.cu_seqlens.data == nullptr) {
    int64_t end = shape.causal ? min(i + 1, shape.kv_len) : shape.kv_len;
    return {b * shape.kv_len, b * shape.kv_len + end};
  }
  int64_t token = b * shape.q_len + i;
  // upper_bound: the first offset past `token`.
  int64_t low = 0;
  int64_t high = shape.num_offsets;
  while (low < high) {
    int64_t middle = low + (high - low) / 2;
    if (LoadIndex(shape.cu_seqlens, middle) <= token) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  if (low == 0 || low == shape.num_offsets) return {0, 0};
  int64_t begin = max(LoadIndex(shape.cu_seqlens, low - 1), int64_t{0});
  int64_t end = shape.causal ? token + 1 : LoadIndex(shape.cu_seqlens, low);
  return {begin, min(end, shape.batch * shape.kv_len)};
}

// Offset of key token u's row in a [B, Hkv, Sk, width] tensor.
__device__ inline int64_t KeyOffset(const AttentionShape& shape, int64_t kv_head, int64_t u,
                                    int64_t width) {
  int64_t b = u / shape.kv_len;
  int64_t j = u % shape.kv_len;
  return ((b * shape.kv_heads + kv_head) * shape.kv_len + j) * width;
}

// q . k of each key in [tile_begin, tile_begin + count), times scale, into
// scores; with `dout`, also dout . v into `value_dots`. One warp per key.
__device__ inline void ScoreTile(const AttentionShape& shape, int64_t kv_head,
                                 const float* q_row, const float* k, const float* dout_row,
                                 const float* v, int64_t tile_begin, int count, float* scores,
                                 float* value_dots) {
  int warp = threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  for (int t = warp; t < count; t += kAttentionWarps) {
    int64_t u = tile_begin + t;
    const float* k_row = k + KeyOffset(shape, kv_head, u, shape.head_dim);
    float dot = 0.0f;
    for (int64_t c = lane; c < shape.head_dim; c += 32) dot += q_row[c] * k_row[c];
    dot = WarpSum(dot);
    if (lane == 0) scores[t] = dot * shape.scale;
    if (dout_row != nullptr) {
      const float* v_row = v + KeyOffset(shape, kv_head, u, shape.value_dim);
      float value_dot = 0.0f;
      for (int64_t c = lane; c < shape.value_dim; c += 32) value_dot += dout_row[c] * v_row[c];
      value_dot = WarpSum(value_dot);
      if (lane == 0) value_dots[t] = value_dot;
    }
  }
}

}  // namespace veomni::runtime::cuda::model

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_MODELDEVICE_CUH
