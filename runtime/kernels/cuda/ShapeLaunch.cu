// Device code of Shape.cpp: one strided element copy serves transpose,
// slice, broadcast_to and concat; fill writes one word everywhere.

#include <cstdint>
#include <vector>

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

// When the innermost dim is contiguous on both sides (a transpose that keeps
// the head dim, a slice of whole rows), copies it in words of up to 16
// bytes: fewer index computations and wider accesses. The shape and strides
// are rewritten in those words.
int WidenInnermost(int element_bytes, const void* src, void* dst, int rank,
                   std::vector<int64_t>& shape, std::vector<int64_t>& src_strides,
                   std::vector<int64_t>& dst_strides) {
  if (rank == 0 || src_strides[rank - 1] != 1 || dst_strides[rank - 1] != 1) return element_bytes;
  for (int wide : {16, 8}) {
    const int factor = wide / element_bytes;
    if (factor <= 1 || shape[rank - 1] % factor != 0) continue;
    if (reinterpret_cast<uintptr_t>(src) % wide != 0 || reinterpret_cast<uintptr_t>(dst) % wide != 0) {
      continue;
    }
    bool divisible = true;
    for (int d = 0; d + 1 < rank; ++d) {
      divisible = divisible && src_strides[d] % factor == 0 && dst_strides[d] % factor == 0;
    }
    if (!divisible) continue;
    shape[rank - 1] /= factor;
    for (int d = 0; d + 1 < rank; ++d) {
      src_strides[d] /= factor;
      dst_strides[d] /= factor;
    }
    return wide;
  }
  return element_bytes;
}

}  // namespace

bool LaunchStridedCopy(int element_bytes, const void* src, void* dst, int rank,
                       const int64_t* shape_in, const int64_t* src_strides_in,
                       const int64_t* dst_strides_in, cudaStream_t stream) {
  std::vector<int64_t> shape(shape_in, shape_in + rank);
  std::vector<int64_t> src_strides(src_strides_in, src_strides_in + rank);
  std::vector<int64_t> dst_strides(dst_strides_in, dst_strides_in + rank);
  element_bytes = WidenInnermost(element_bytes, src, dst, rank, shape, src_strides, dst_strides);
  StridedIndex<2> index;
  if (!MakeStridedIndex<2>(rank, shape.data(), {dst_strides.data(), src_strides.data()},
                           &index)) {
    return false;
  }
  int64_t count = ElementCount(rank, shape.data());
  switch (element_bytes) {
    case 1: LaunchStridedCopyWords<uint8_t>(index, count, src, dst, stream); break;
    case 2: LaunchStridedCopyWords<uint16_t>(index, count, src, dst, stream); break;
    case 4: LaunchStridedCopyWords<uint32_t>(index, count, src, dst, stream); break;
    case 8: LaunchStridedCopyWords<uint64_t>(index, count, src, dst, stream); break;
    case 16: LaunchStridedCopyWords<uint4>(index, count, src, dst, stream); break;
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
