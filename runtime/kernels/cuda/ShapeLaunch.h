// Launches of the data-movement kernels (ShapeLaunch.cu) for the wrappers in
// Shape.cpp, which have checked the operands. Pointers are device memory;
// every launch is asynchronous on `stream`.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_SHAPELAUNCH_H
#define VEOMNI_RUNTIME_KERNELS_CUDA_SHAPELAUNCH_H

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

// For every index of the row-major `shape` (`rank` dims, outermost first):
// dst[index . dst_strides] = src[index . src_strides], strides in elements
// of `element_bytes` (1, 2, 4 or 8), moved without looking at their values.
// Returns false, having launched nothing, when more than 8 dims remain
// after merging the ones both sides walk contiguously.
bool LaunchStridedCopy(int element_bytes, const void* src, void* dst, int rank,
                       const int64_t* shape, const int64_t* src_strides,
                       const int64_t* dst_strides, cudaStream_t stream);

// Sets `count` words to `word`.
void LaunchFill(uint32_t* out, uint32_t word, int64_t count, cudaStream_t stream);
void LaunchFill(uint64_t* out, uint64_t word, int64_t count, cudaStream_t stream);

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_SHAPELAUNCH_H
