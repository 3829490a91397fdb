// Indexing shared by the CUDA kernel families (nvcc only): a strided index
// that maps the linear index of a row-major iteration shape to one element
// offset per operand (broadcasting, transposes, slices), and the launch
// geometry of grid-stride loops.

#ifndef VEOMNI_RUNTIME_KERNELS_CUDA_DEVICEINDEXING_CUH
#define VEOMNI_RUNTIME_KERNELS_CUDA_DEVICEINDEXING_CUH

#include <cstdint>

#include <cuda_runtime_api.h>

namespace veomni::runtime::cuda {

inline constexpr int kMaxIndexDims = 8;
inline constexpr int kElementwiseThreads = 256;
// Enough resident blocks to fill an H100/H200; grid-stride loops cover the rest.
inline constexpr int64_t kMaxGridBlocks = 4096;

// Blocks for a grid-stride loop over `count` items, `threads` per block.
inline unsigned GridBlocks(int64_t count, int threads) {
  int64_t blocks = (count + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks);
}

inline int64_t ElementCount(int rank, const int64_t* shape) {
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) count *= shape[d];
  return count;
}

// Whether linear indices below `count` fit the 32-bit index path.
inline bool FitsInt32(int64_t count) { return count <= INT32_MAX; }

// Element offsets of `kOperands` operands at each linear index of an
// iteration shape. Dims are stored innermost first, after dropping size-1
// dims and merging neighbours that every operand walks as one (so adding a
// [c] bias to [a, b, c] costs a 2-dim index). Passed to kernels by value.
template <int kOperands>
struct StridedIndex {
  int rank = 0;
  int64_t shape[kMaxIndexDims] = {};
  int64_t strides[kOperands][kMaxIndexDims] = {};

  // Whether every operand is read at the linear index itself.
  bool IsContiguous() const {
    if (rank == 0) return true;
    if (rank > 1) return false;
    for (int op = 0; op < kOperands; ++op) {
      if (strides[op][0] != 1) return false;
    }
    return true;
  }

  // `Index` is uint32_t when the iteration has fewer than 2^31 elements, so
  // that the divisions stay 32-bit; offsets are always 64-bit because a
  // strided source (a slice) can be larger than the iteration.
  template <typename Index>
  __device__ void Offsets(Index linear, int64_t (&offsets)[kOperands]) const {
#pragma unroll
    for (int op = 0; op < kOperands; ++op) offsets[op] = 0;
#pragma unroll
    for (int d = 0; d < kMaxIndexDims; ++d) {
      if (d == rank) break;
      Index coordinate = linear;
      // The outermost dim takes what is left without a division.
      if (d + 1 < rank) {
        Index size = static_cast<Index>(shape[d]);
        coordinate = linear % size;
        linear /= size;
      }
#pragma unroll
      for (int op = 0; op < kOperands; ++op) {
        offsets[op] += static_cast<int64_t>(coordinate) * strides[op][d];
      }
    }
  }
};

// Builds the index of a row-major `shape` (outermost first, `rank` dims)
// where operand `op` has element strides `strides[op]` (0 where it repeats).
// False if more than kMaxIndexDims dims remain after merging.
template <int kOperands>
bool MakeStridedIndex(int rank, const int64_t* shape, const int64_t* const (&strides)[kOperands],
                      StridedIndex<kOperands>* index) {
  *index = StridedIndex<kOperands>();
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;  // its coordinate is always 0
    int inner = index->rank - 1;
    if (inner >= 0) {
      bool mergeable = true;
      for (int op = 0; op < kOperands; ++op) {
        mergeable = mergeable &&
                    strides[op][d] == index->strides[op][inner] * index->shape[inner];
      }
      if (mergeable) {
        index->shape[inner] *= shape[d];
        continue;
      }
    }
    if (index->rank == kMaxIndexDims) return false;
    index->shape[index->rank] = shape[d];
    for (int op = 0; op < kOperands; ++op) index->strides[op][index->rank] = strides[op][d];
    ++index->rank;
  }
  return true;
}

// Calls `body(i, offsets)` for every linear index i < count with the
// operands' element offsets there; `body` is a functor with a __device__
// call operator.
template <int kOperands, typename Body>
__global__ void ContiguousLoopKernel(int64_t count, Body body) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    int64_t offsets[kOperands];
#pragma unroll
    for (int op = 0; op < kOperands; ++op) offsets[op] = i;
    body(i, offsets);
  }
}

template <int kOperands, typename Index, typename Body>
__global__ void StridedLoopKernel(int64_t count, StridedIndex<kOperands> index, Body body) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    int64_t offsets[kOperands];
    index.Offsets(static_cast<Index>(i), offsets);
    body(i, offsets);
  }
}

// Launches `body` over `count` elements that every operand holds in order.
template <int kOperands, typename Body>
void LaunchContiguousLoop(int64_t count, Body body, cudaStream_t stream) {
  if (count == 0) return;
  ContiguousLoopKernel<kOperands>
      <<<GridBlocks(count, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(count, body);
}

// Launches `body` over the `count` elements of `index` on `stream`, without
// strides where the index allows it; nothing when count is 0.
template <int kOperands, typename Body>
void LaunchIndexedLoop(const StridedIndex<kOperands>& index, int64_t count, Body body,
                       cudaStream_t stream) {
  if (count == 0) return;
  unsigned blocks = GridBlocks(count, kElementwiseThreads);
  if (index.IsContiguous()) {
    LaunchContiguousLoop<kOperands>(count, body, stream);
  } else if (FitsInt32(count)) {
    StridedLoopKernel<kOperands, uint32_t>
        <<<blocks, kElementwiseThreads, 0, stream>>>(count, index, body);
  } else {
    StridedLoopKernel<kOperands, uint64_t>
        <<<blocks, kElementwiseThreads, 0, stream>>>(count, index, body);
  }
}

}  // namespace veomni::runtime::cuda

#endif  // VEOMNI_RUNTIME_KERNELS_CUDA_DEVICEINDEXING_CUH
