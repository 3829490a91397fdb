// Launches of the reduction and softmax kernels (ReduceLaunch.cu) for the
// wrappers in Reduce.cpp, which have checked the operands. Pointers are
// device memory; every launch is asynchronous on `stream`.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_REDUCELAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_REDUCELAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

// kSum of f32 accumulates in double and of integers wraps; kMean is f32
// only (0 / 0 = NaN over no elements); kMax propagates NaN; kSumSquares is
// f32 only, each square taken in double.
enum class ReduceOp { kSum, kMean, kMax, kSumSquares };

// y[o] = op over r of x[o . kept_strides + r . reduced_strides], where o
// runs row-major over `kept_shape` (the output, contiguous) and r over
// `reduced_shape`; shapes are outermost first and strides are the input's,
// in elements. Returns false, having launched nothing, when either side
// needs more than 8 strided dims after merging.
bool LaunchReduce(ReduceOp op, const float* x, float* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream);
bool LaunchReduce(ReduceOp op, const int64_t* x, int64_t* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream);
bool LaunchReduce(ReduceOp op, const int32_t* x, int32_t* y, int kept_rank,
                  const int64_t* kept_shape, const int64_t* kept_strides, int reduced_rank,
                  const int64_t* reduced_shape, const int64_t* reduced_strides,
                  cudaStream_t stream);

// Softmax (or log-softmax when `log`) of x viewed as [outer, length, inner]
// along the middle dim.
void LaunchSoftmax(bool log, const float* x, float* y, int64_t outer, int64_t length,
                   int64_t inner, cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_REDUCELAUNCH_H
