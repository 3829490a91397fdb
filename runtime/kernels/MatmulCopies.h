// How a bf16 matmul on the GPU rounds its f32 operands into bf16 copies
// within a bounded scratch (runtime/kernels/cuda/Matmul.cpp). veomni-compile's
// memory and step-time model (compiler/CostModel.cpp) plans with the same
// function, so the two count the same. Plain C++: no CUDA, no MLIR.
//
// Copies of both whole operands would, for the output projection's gradient
// ([tokens, vocab], gigabytes), add their size to the step's peak memory.
// Such a product runs in pieces instead: the depth split into slices whose
// partial products accumulate into the f32 output, or the output's rows
// (columns) split while the other operand is copied once. Of the splits that
// keep the GEMMs large, the plan takes the one that moves the fewest bytes.

#ifndef VEOMNI_RUNTIME_KERNELS_MATMULCOPIES_H
#define VEOMNI_RUNTIME_KERNELS_MATMULCOPIES_H

#include <algorithm>
#include <cstdint>

namespace veomni::runtime {

// The most scratch the bf16 copies of one matmul take.
inline constexpr int64_t kMatmulCopyBytes = int64_t{768} << 20;

// A product C[m, n] = A[m, k] B[k, n] (either operand possibly stored
// transposed) done as pieces of m_chunk rows, n_chunk columns and k_chunk
// depth; the last piece of a dimension may be shorter. Pieces that split the
// depth accumulate (beta = 1) into C.
struct MatmulCopyPlan {
  int64_t m_chunk = 0, n_chunk = 0, k_chunk = 0;
  // Both operand copies of the largest piece, each in 256-byte aligned blocks.
  int64_t scratch_bytes = 0;
  // f32 elements rounded to bf16 over the whole product (each once: the
  // operand that is not split is copied once for all pieces).
  int64_t rounded_elements = 0;
  // f32 output elements read back by the accumulating depth pieces.
  int64_t reread_outputs = 0;
};

inline int64_t AlignedCopyBytes(int64_t elements) { return (elements * 2 + 255) / 256 * 256; }

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pieces of `length` no longer than `most` (a multiple of `align` unless it
// covers length), evened out: the piece length, or 0 when `most` < `least`.
inline int64_t EvenPiece(int64_t length, int64_t most, int64_t align, int64_t least) {
  if (most >= length) return length;
  most = most / align * align;
  if (most < least || most <= 0) return 0;
  int64_t pieces = CeilDiv(length, most);
  return CeilDiv(CeilDiv(length, pieces), align) * align;
}

// Plans the copies of an m x n x k product in at most `limit_bytes` of
// scratch; false when no split of one dimension fits (the caller multiplies
// the f32 operands without copies).
inline bool PlanMatmulCopies(int64_t m, int64_t n, int64_t k, int64_t limit_bytes,
                             MatmulCopyPlan* plan) {
  // Piece lengths are multiples of 64 (whole tensor-core tiles, aligned
  // rows) and at least 256 long, below which the GEMMs run far off peak. A
  // piece of the output keeps a quarter of it or 4M outputs (two waves of
  // 128 x 128 tiles on 132 SMs), or too few tiles would fill the GPU.
  constexpr int64_t kAlign = 64, kLeast = 256, kLeastOutputs = int64_t{1} << 22;
  const int64_t least_outputs = std::min(kLeastOutputs, m * n / 4);
  auto scratch = [](int64_t a_elements, int64_t b_elements) {
    return AlignedCopyBytes(a_elements) + AlignedCopyBytes(b_elements);
  };
  if (scratch(m * k, k * n) <= limit_bytes) {
    *plan = {m, n, k, scratch(m * k, k * n), m * k + k * n, 0};
    return true;
  }
  bool found = false;
  double best_bytes = 0;
  auto consider = [&](const MatmulCopyPlan& candidate) {
    // Rounding reads 4 bytes and writes 2; an accumulating piece reads and
    // writes its f32 output once more.
    double bytes = 6.0 * candidate.rounded_elements + 8.0 * candidate.reread_outputs;
    if (candidate.scratch_bytes <= limit_bytes && (!found || bytes < best_bytes)) {
      *plan = candidate;
      best_bytes = bytes;
      found = true;
    }
  };
  // Both operands sliced along the depth (less 512 bytes: alignment).
  if (int64_t kc = EvenPiece(k, (limit_bytes - 512) / 2 / (m + n), kAlign, kLeast)) {
    consider({m, n, kc, scratch(m * kc, kc * n), m * k + k * n, (CeilDiv(k, kc) - 1) * m * n});
  }
  // B copied once, A's rows in pieces.
  if (AlignedCopyBytes(k * n) + 256 < limit_bytes) {
    int64_t most = (limit_bytes - AlignedCopyBytes(k * n) - 256) / 2 / k;
    int64_t mc = EvenPiece(m, most, kAlign, kLeast);
    if (mc > 0 && mc * n >= least_outputs)
      consider({mc, n, k, scratch(mc * k, k * n), m * k + k * n, 0});
  }
  // A copied once, B's columns in pieces.
  if (AlignedCopyBytes(m * k) + 256 < limit_bytes) {
    int64_t most = (limit_bytes - AlignedCopyBytes(m * k) - 256) / 2 / k;
    int64_t nc = EvenPiece(n, most, kAlign, kLeast);
    if (nc > 0 && m * nc >= least_outputs)
      consider({m, nc, k, scratch(m * k, k * nc), m * k + k * n, 0});
  }
  return found;
}

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_KERNELS_MATMULCOPIES_H
