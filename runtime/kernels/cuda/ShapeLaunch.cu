// Device code of Shape.cpp: one strided element copy serves transpose,
// slice, broadcast_to and concat; fill writes one word everywhere.

#include <cstdint>

#include "runtime/kernels/cuda/DeviceIndexing.cuh"
#include "runtime/kernels/cuda/ShapeLaunch.h"

namespace veomni::runtime::cuda {
namespace {

// Operand 0 is the destination, operand 1 the source.
template <typename Word>
struct StridedCopyBody {
  const Word* src;
  Word* dst;
  __device__ void operator()(int64_t, const int64_t (&offsets)[2]) const {
    dst[offsets[0]] = src[offsets[1]];
  }
};

template <typename Word>
struct FillBody {
  Word* out;
  Word word;
  __device__ void operator()(int64_t i, const int64_t (&)[1]) const { out[i] = word; }
};

template <typename Word>
void LaunchStridedCopyWords(const StridedIndex<2>& index, int64_t count, const void* src,
                            void* dst, cudaStream_t stream) {
  LaunchIndexedLoop(index, count,
                    StridedCopyBody<Word>{static_cast<const Word*>(src), static_cast<Word*>(dst)},
                    stream);
}

}  // namespace

bool LaunchStridedCopy(int element_bytes, const void* src, void* dst, int rank,
                       const int64_t* shape, const int64_t* src_strides,
                       const int64_t* dst_strides, cudaStream_t stream) {
  StridedIndex<2> index;
  if (!MakeStridedIndex<2>(rank, shape, {dst_strides, src_strides}, &index)) return false;
  int64_t count = ElementCount(rank, shape);
  switch (element_bytes) {
    case 1: LaunchStridedCopyWords<uint8_t>(index, count, src, dst, stream); break;
    case 2: LaunchStridedCopyWords<uint16_t>(index, count, src, dst, stream); break;
    case 4: LaunchStridedCopyWords<uint32_t>(index, count, src, dst, stream); break;
    case 8: LaunchStridedCopyWords<uint64_t>(index, count, src, dst, stream); break;
  }
  return true;
}

void LaunchFill(uint32_t* out, uint32_t word, int64_t count, cudaStream_t stream) {
  LaunchContiguousLoop<1>(count, FillBody<uint32_t>{out, word}, stream);
}

void LaunchFill(uint64_t* out, uint64_t word, int64_t count, cudaStream_t stream) {
  LaunchContiguousLoop<1>(count, FillBody<uint64_t>{out, word}, stream);
}

}  // namespace veomni::runtime::cuda
