// Device code of Reduce.cpp. A reduction over contiguous elements gets a
// block per output (cub::BlockReduce), or several blocks and a second pass
// when the outputs are too few to fill the GPU; one whose elements are
// strided, or short, gets a thread per output, so that neighbouring threads
// read neighbouring outputs' elements. Softmax does the same per line.

#include <cstdint>
#include <limits>
#include <type_traits>

#include <cub/cub.cuh>

#include "runtime/kernels/cuda/DeviceIndexing.cuh"
#include "runtime/kernels/cuda/ReduceLaunch.h"

namespace veomni::runtime::cuda {
namespace {

constexpr int kReduceThreads = 256;
// Below this many elements per output a whole block per output is wasted.
constexpr int64_t kMinBlockReduction = 32;
// Enough outputs to fill the GPU with a thread each.
constexpr int64_t kManyOutputs = 2048;

// f32 sums in double like the CPU; a mean divides once at the end (a sum
// divides by 1, which is exact); a sum of squares squares each in double.
struct FloatSum {
  using In = float;
  using Acc = double;
  using Out = float;
  double divisor;
  bool square;
  __device__ Acc Identity() const { return 0.0; }
  __device__ Acc Load(float x) const {
    double value = x;
    return square ? value * value : value;
  }
  __device__ Acc operator()(Acc a, Acc b) const { return a + b; }
  __device__ float Finish(Acc total) const { return static_cast<float>(total / divisor); }
};

// Integer sums in unsigned 64-bit arithmetic wrap instead of overflowing,
// and modular sums do not depend on the order.
template <typename Int>
struct IntegerSum {
  using In = Int;
  using Acc = uint64_t;
  using Out = Int;
  __device__ Acc Identity() const { return 0; }
  __device__ Acc Load(Int x) const { return static_cast<uint64_t>(static_cast<int64_t>(x)); }
  __device__ Acc operator()(Acc a, Acc b) const { return a + b; }
  __device__ Int Finish(Acc total) const {
    return static_cast<Int>(static_cast<std::make_unsigned_t<Int>>(total));
  }
};

// A NaN, once seen, wins (torch.amax, and the CPU kernels).
struct NanMax {
  __device__ float operator()(float a, float b) const {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return b > a ? b : a;
  }
};

template <typename T>
struct Max {
  using In = T;
  using Acc = T;
  using Out = T;
  __device__ Acc Identity() const {
    if constexpr (std::is_floating_point_v<T>) {
      return -std::numeric_limits<T>::infinity();
    } else {
      return std::numeric_limits<T>::lowest();
    }
  }
  __device__ Acc Load(T x) const { return x; }
  __device__ Acc operator()(Acc a, Acc b) const {
    if constexpr (std::is_floating_point_v<T>) {
      return NanMax()(a, b);
    } else {
      return b > a ? b : a;
    }
  }
  __device__ T Finish(Acc max) const { return max; }
};

template <typename Index>
__device__ int64_t OffsetOf(const StridedIndex<1>& index, int64_t linear) {
  int64_t offset[1];
  index.Offsets(static_cast<Index>(linear), offset);
  return offset[0];
}

// A block per output; threads stride over its reduced elements.
template <typename Reducer, typename Index>
__global__ void __launch_bounds__(kReduceThreads)
    ReduceBlockPerOutputKernel(const typename Reducer::In* x, typename Reducer::Out* y,
                               int64_t outputs, StridedIndex<1> kept, StridedIndex<1> reduced,
                               int64_t reduced_count, Reducer reducer) {
  using Acc = typename Reducer::Acc;
  using BlockReduce = cub::BlockReduce<Acc, kReduceThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const typename Reducer::In* base = x + OffsetOf<Index>(kept, o);
    Acc acc = reducer.Identity();
    for (int64_t r = threadIdx.x; r < reduced_count; r += kReduceThreads) {
      acc = reducer(acc, reducer.Load(base[OffsetOf<Index>(reduced, r)]));
    }
    Acc total = BlockReduce(temp).Reduce(acc, reducer);
    if (threadIdx.x == 0) y[o] = reducer.Finish(total);
    __syncthreads();  // before `temp` serves the next output
  }
}

// A thread per output, folding its elements in order (as the CPU does).
template <typename Reducer, typename Index>
__global__ void ReduceThreadPerOutputKernel(const typename Reducer::In* x,
                                            typename Reducer::Out* y, int64_t outputs,
                                            StridedIndex<1> kept, StridedIndex<1> reduced,
                                            int64_t reduced_count, Reducer reducer) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs;
       o += stride) {
    const typename Reducer::In* base = x + OffsetOf<Index>(kept, o);
    typename Reducer::Acc acc = reducer.Identity();
    for (int64_t r = 0; r < reduced_count; ++r) {
      acc = reducer(acc, reducer.Load(base[OffsetOf<Index>(reduced, r)]));
    }
    y[o] = reducer.Finish(acc);
  }
}

// Few outputs over many elements (a gradient norm's whole-tensor sum) would
// leave all but a few SMs idle with a block per output; each output's
// elements are then split into chunks, a block per chunk writes a partial,
// and a second pass combines an output's partials in chunk order, so the
// result does not depend on timing.
constexpr int64_t kSplitMinChunk = 16 * 1024;  // elements per block, at least
constexpr int64_t kSplitTargetBlocks = 2048;   // enough to fill an H100 several times

template <typename Reducer, typename Index>
__global__ void __launch_bounds__(kReduceThreads)
    ReduceChunkKernel(const typename Reducer::In* x, typename Reducer::Acc* partials,
                      int64_t splits, int64_t chunk, StridedIndex<1> kept,
                      StridedIndex<1> reduced, int64_t reduced_count, Reducer reducer) {
  using Acc = typename Reducer::Acc;
  using BlockReduce = cub::BlockReduce<Acc, kReduceThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  int64_t o = blockIdx.x / splits;
  int64_t begin = (blockIdx.x % splits) * chunk;
  int64_t end = begin + chunk < reduced_count ? begin + chunk : reduced_count;
  const typename Reducer::In* base = x + OffsetOf<Index>(kept, o);
  Acc acc = reducer.Identity();
  for (int64_t r = begin + threadIdx.x; r < end; r += kReduceThreads) {
    acc = reducer(acc, reducer.Load(base[OffsetOf<Index>(reduced, r)]));
  }
  Acc total = BlockReduce(temp).Reduce(acc, reducer);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// The same over contiguous f32 elements in 16-byte-aligned chunks of a
// multiple of 4: float4 loads, kVectorsInFlight per thread at a time, keep
// enough bytes in flight to stream at memory speed (one scalar load per
// thread leaves a split reduction a third as fast). The order of the sum is
// still fixed.
constexpr int kVectorsInFlight = 4;

template <typename Reducer>
__global__ void __launch_bounds__(kReduceThreads)
    ReduceContiguousChunkKernel(const float* x, typename Reducer::Acc* partials, int64_t splits,
                                int64_t chunk, int64_t kept_stride, int64_t reduced_count,
                                Reducer reducer) {
  using Acc = typename Reducer::Acc;
  using BlockReduce = cub::BlockReduce<Acc, kReduceThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  const int64_t o = blockIdx.x / splits;
  const int64_t begin = (blockIdx.x % splits) * chunk;
  const int64_t end = begin + chunk < reduced_count ? begin + chunk : reduced_count;
  const float* base = x + o * kept_stride;
  const float4* vectors = reinterpret_cast<const float4*>(base + begin);
  const int64_t count = (end - begin) / 4;
  Acc acc = reducer.Identity();
  constexpr int64_t kStep = int64_t{kReduceThreads} * kVectorsInFlight;
  for (int64_t v0 = threadIdx.x; v0 < count; v0 += kStep) {
    float4 loaded[kVectorsInFlight];
#pragma unroll
    for (int u = 0; u < kVectorsInFlight; ++u) {
      const int64_t v = v0 + u * kReduceThreads;
      loaded[u] = v < count ? vectors[v] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int u = 0; u < kVectorsInFlight; ++u) {
      if (v0 + u * kReduceThreads >= count) break;
      acc = reducer(acc, reducer.Load(loaded[u].x));
      acc = reducer(acc, reducer.Load(loaded[u].y));
      acc = reducer(acc, reducer.Load(loaded[u].z));
      acc = reducer(acc, reducer.Load(loaded[u].w));
    }
  }
  // The last chunk's tail of fewer than 4.
  for (int64_t r = begin + count * 4 + threadIdx.x; r < end; r += kReduceThreads) {
    acc = reducer(acc, reducer.Load(base[r]));
  }
  Acc total = BlockReduce(temp).Reduce(acc, reducer);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

template <typename Reducer>
__global__ void __launch_bounds__(kReduceThreads)
    CombineChunksKernel(const typename Reducer::Acc* partials, typename Reducer::Out* y,
                        int64_t splits, Reducer reducer) {
  using Acc = typename Reducer::Acc;
  using BlockReduce = cub::BlockReduce<Acc, kReduceThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  const Acc* own = partials + blockIdx.x * splits;
  Acc acc = reducer.Identity();
  for (int64_t s = threadIdx.x; s < splits; s += kReduceThreads) acc = reducer(acc, own[s]);
  Acc total = BlockReduce(temp).Reduce(acc, reducer);
  if (threadIdx.x == 0) y[blockIdx.x] = reducer.Finish(total);
}

// Launches the two passes when splitting pays; false when it does not (or
// its few bytes of stream-ordered scratch cannot be had, which leaves the
// one-pass kernel, equally exact).
template <typename Index, typename Reducer>
bool LaunchSplitReduction(const typename Reducer::In* x, typename Reducer::Out* y,
                          int64_t outputs, const StridedIndex<1>& kept,
                          const StridedIndex<1>& reduced, int64_t reduced_count, Reducer reducer,
                          cudaStream_t stream) {
  if (outputs * 4 >= kSplitTargetBlocks || reduced_count < 2 * kSplitMinChunk) return false;
  int64_t splits = (kSplitTargetBlocks + outputs - 1) / outputs;
  int64_t most = (reduced_count + kSplitMinChunk - 1) / kSplitMinChunk;
  if (splits > most) splits = most;
  // Chunks of a multiple of 4 keep float4 reads aligned.
  int64_t chunk = ((reduced_count + splits - 1) / splits + 3) / 4 * 4;
  splits = (reduced_count + chunk - 1) / chunk;
  using Acc = typename Reducer::Acc;
  Acc* partials = nullptr;
  if (cudaMallocAsync(reinterpret_cast<void**>(&partials), outputs * splits * sizeof(Acc),
                      stream) != cudaSuccess) {
    cudaGetLastError();  // consumed: the one-pass kernel runs instead
    return false;
  }
  const unsigned blocks = static_cast<unsigned>(outputs * splits);
  bool vectorized = false;
  if constexpr (std::is_same_v<typename Reducer::In, float>) {
    // Contiguous elements, each output's at a 16-byte-aligned multiple of 4.
    const int64_t kept_stride = kept.rank == 0 ? 0 : kept.strides[0][0];
    vectorized = reduced.IsContiguous() && kept.rank <= 1 && chunk % 4 == 0 &&
                 kept_stride % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    if (vectorized) {
      ReduceContiguousChunkKernel<Reducer><<<blocks, kReduceThreads, 0, stream>>>(
          x, partials, splits, chunk, kept_stride, reduced_count, reducer);
    }
  }
  if (!vectorized) {
    ReduceChunkKernel<Reducer, Index><<<blocks, kReduceThreads, 0, stream>>>(
        x, partials, splits, chunk, kept, reduced, reduced_count, reducer);
  }
  CombineChunksKernel<Reducer><<<static_cast<unsigned>(outputs), kReduceThreads, 0, stream>>>(
      partials, y, splits, reducer);
  cudaFreeAsync(partials, stream);
  return true;
}

template <typename Index, typename Reducer>
void LaunchReduction(const typename Reducer::In* x, typename Reducer::Out* y, int64_t outputs,
                     const StridedIndex<1>& kept, const StridedIndex<1>& reduced,
                     int64_t reduced_count, Reducer reducer, cudaStream_t stream) {
  bool contiguous_elements = reduced.rank > 0 && reduced.strides[0][0] == 1;
  bool block_per_output = reduced_count >= kMinBlockReduction &&
                          (contiguous_elements || outputs < kManyOutputs);
  if (block_per_output && LaunchSplitReduction<Index>(x, y, outputs, kept, reduced,
                                                     reduced_count, reducer, stream)) {
    return;
  }
  if (block_per_output) {
    unsigned blocks =
        static_cast<unsigned>(outputs < kMaxGridBlocks ? outputs : kMaxGridBlocks);
    ReduceBlockPerOutputKernel<Reducer, Index><<<blocks, kReduceThreads, 0, stream>>>(
        x, y, outputs, kept, reduced, reduced_count, reducer);
  } else {
    ReduceThreadPerOutputKernel<Reducer, Index>
        <<<GridBlocks(outputs, kReduceThreads), kReduceThreads, 0, stream>>>(
            x, y, outputs, kept, reduced, reduced_count, reducer);
  }
}

template <typename Reducer>
bool PlanAndLaunch(const typename Reducer::In* x, typename Reducer::Out* y, int kept_rank,
                   const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                   const int64_t* reduced_shape, const int64_t* reduced_strides,
                   Reducer reducer, cudaStream_t stream) {
  StridedIndex<1> kept, reduced;
  if (!MakeStridedIndex<1>(kept_rank, kept_shape, {kept_strides}, &kept) ||
      !MakeStridedIndex<1>(reduced_rank, reduced_shape, {reduced_strides}, &reduced)) {
    return false;
  }
  int64_t outputs = ElementCount(kept_rank, kept_shape);
  int64_t reduced_count = ElementCount(reduced_rank, reduced_shape);
  if (outputs == 0) return true;
  if (FitsInt32(outputs) && FitsInt32(reduced_count)) {
    LaunchReduction<uint32_t>(x, y, outputs, kept, reduced, reduced_count, reducer, stream);
  } else {
    LaunchReduction<uint64_t>(x, y, outputs, kept, reduced, reduced_count, reducer, stream);
  }
  return true;
}

template <typename Int>
bool LaunchIntegerReduce(ReduceOp op, const Int* x, Int* y, int kept_rank,
                         const int64_t* kept_shape, const int64_t* kept_strides,
                         int reduced_rank, const int64_t* reduced_shape,
                         const int64_t* reduced_strides, cudaStream_t stream) {
  if (op == ReduceOp::kMax) {
    return PlanAndLaunch(x, y, kept_rank, kept_shape, kept_strides, reduced_rank, reduced_shape,
                         reduced_strides, Max<Int>{}, stream);
  }
  // kMean and kSumSquares are f32 only; the wrappers reject integers.
  return PlanAndLaunch(x, y, kept_rank, kept_shape, kept_strides, reduced_rank, reduced_shape,
                       reduced_strides, IntegerSum<Int>{}, stream);
}

// Softmax of one line through three passes: max, sum of exp(x - max), write.
// exp runs in f32; the sum accumulates in double (free in a memory-bound
// kernel) so long lines stay as accurate as the CPU's. The CPU writes
// exp(x - (max + log sum)); exp(x - max) / sum is the same value with less
// f32 rounding.
struct SoftmaxLine {
  bool log;
  __device__ float Output(float x, float max, float sum) const {
    return log ? (x - max) - logf(sum) : expf(x - max) / sum;
  }
};

// A block per line of `length` contiguous elements (softmax over the last dim).
__global__ void __launch_bounds__(kReduceThreads)
    SoftmaxBlockPerLineKernel(const float* x, float* y, int64_t lines, int64_t length,
                              SoftmaxLine line) {
  using MaxReduce = cub::BlockReduce<float, kReduceThreads>;
  using SumReduce = cub::BlockReduce<double, kReduceThreads>;
  __shared__ union {
    typename MaxReduce::TempStorage max;
    typename SumReduce::TempStorage sum;
  } temp;
  __shared__ float line_max, line_sum;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    const float* in = x + l * length;
    float* out = y + l * length;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t j = threadIdx.x; j < length; j += kReduceThreads) max = NanMax()(max, in[j]);
    max = MaxReduce(temp.max).Reduce(max, NanMax());
    if (threadIdx.x == 0) line_max = max;
    __syncthreads();
    max = line_max;
    double partial = 0.0;
    for (int64_t j = threadIdx.x; j < length; j += kReduceThreads) partial += expf(in[j] - max);
    double total = SumReduce(temp.sum).Sum(partial);
    if (threadIdx.x == 0) line_sum = static_cast<float>(total);
    __syncthreads();
    float sum = line_sum;
    for (int64_t j = threadIdx.x; j < length; j += kReduceThreads) {
      out[j] = line.Output(in[j], max, sum);
    }
    __syncthreads();  // before the next line overwrites line_max and temp
  }
}

// A thread per line of x viewed as [outer, length, inner], inner > 1:
// neighbouring threads take neighbouring inner indices.
__global__ void SoftmaxThreadPerLineKernel(const float* x, float* y, int64_t outer,
                                           int64_t length, int64_t inner, SoftmaxLine line) {
  int64_t lines = outer * inner;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t l = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
       l += stride) {
    int64_t base = (l / inner) * length * inner + l % inner;
    const float* in = x + base;
    float* out = y + base;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < length; ++j) max = NanMax()(max, in[j * inner]);
    double total = 0.0;
    for (int64_t j = 0; j < length; ++j) total += expf(in[j * inner] - max);
    float sum = static_cast<float>(total);
    for (int64_t j = 0; j < length; ++j) out[j * inner] = line.Output(in[j * inner], max, sum);
  }
}

}  // namespace

bool LaunchReduce(ReduceOp op, const float* x, float* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream) {
  if (op == ReduceOp::kMax) {
    return PlanAndLaunch(x, y, kept_rank, kept_shape, kept_strides, reduced_rank, reduced_shape,
                         reduced_strides, Max<float>{}, stream);
  }
  double divisor =
      op == ReduceOp::kMean ? static_cast<double>(ElementCount(reduced_rank, reduced_shape))
                            : 1.0;
  return PlanAndLaunch(x, y, kept_rank, kept_shape, kept_strides, reduced_rank, reduced_shape,
                       reduced_strides, FloatSum{divisor, op == ReduceOp::kSumSquares}, stream);
}

bool LaunchReduce(ReduceOp op, const int64_t* x, int64_t* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream) {
  return LaunchIntegerReduce(op, x, y, kept_rank, kept_shape, kept_strides, reduced_rank,
                             reduced_shape, reduced_strides, stream);
}

bool LaunchReduce(ReduceOp op, const int32_t* x, int32_t* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream) {
  return LaunchIntegerReduce(op, x, y, kept_rank, kept_shape, kept_strides, reduced_rank,
                             reduced_shape, reduced_strides, stream);
}

void LaunchSoftmax(bool log, const float* x, float* y, int64_t outer, int64_t length,
                   int64_t inner, cudaStream_t stream) {
  if (outer == 0 || length == 0 || inner == 0) return;
  if (inner == 1) {
    unsigned blocks = static_cast<unsigned>(outer < kMaxGridBlocks ? outer : kMaxGridBlocks);
    SoftmaxBlockPerLineKernel<<<blocks, kReduceThreads, 0, stream>>>(x, y, outer, length,
                                                                     SoftmaxLine{log});
  } else {
    SoftmaxThreadPerLineKernel<<<GridBlocks(outer * inner, kReduceThreads), kReduceThreads, 0,
                                 stream>>>(x, y, outer, length, inner, SoftmaxLine{log});
  }
}

}  // namespace veomni::runtime::cuda
