// Device code of the MoE kernels. top_k and the router run one block per row;
// the experts route (token, slot) rows into expert-sorted order on the device
// (count per chunk, scan, scatter: stable, so every sum below has a fixed
// order) and run tiled grouped GEMMs (fp32, or bf16 tensor cores) over each
// expert's rows, whose extents they read from the device offsets.

#include "runtime/kernels/cuda/MoeLaunch.h"

#include <climits>
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "runtime/kernels/cuda/CudaContext.h"

namespace veomni::runtime::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;
// Threads of the one-block-per-row kernels (top_k, moe_gate, moe_gate_grad).
constexpr int kRowThreads = 128;
constexpr int kRowWarps = kRowThreads / kWarpSize;
// Slots per routing chunk, one thread each.
constexpr int kRouteChunk = 256;
// GEMM tiles: 64 x 64 outputs, 256 threads; fp32: 16 deep, 4 x 4 outputs
// per thread.
constexpr int kTileRows = 64;
constexpr int kTileCols = 64;
constexpr int kTileDepth = 16;
constexpr int kGemmThreads = 256;
// Keeps float4 reads aligned and spreads the transposing stores over banks.
constexpr int kTilePad = 4;
constexpr int kElementwiseThreads = 256;
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;  // grid-stride loops cover the rest

unsigned BlocksFor(int64_t work, int64_t per_block) {
  int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks);
}
unsigned CeilDiv(int64_t value, int64_t divisor) {
  return static_cast<unsigned>((value + divisor - 1) / divisor);
}

// ----------------------------------------------------------------- ranking

// Whether `a` (at index ia) ranks before `b` (at ib): NaN above every
// number, then the larger value, equal values by the lower index (as the CPU).
template <typename T>
__device__ bool RanksBefore(T a, int64_t ia, T b, int64_t ib) {
  bool a_nan = isnan(a);
  bool b_nan = isnan(b);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

template <typename T>
struct Candidate {
  T value;
  long long index;  // < 0: none
};

template <typename T>
__device__ Candidate<T> Better(Candidate<T> a, Candidate<T> b) {
  if (b.index < 0) return a;
  if (a.index < 0) return b;
  return RanksBefore(b.value, b.index, a.value, a.index) ? b : a;
}

// The best candidate of the block, returned to every thread.
template <typename T>
__device__ Candidate<T> BlockBest(Candidate<T> candidate) {
  __shared__ Candidate<T> warp_best[kRowWarps];
  __shared__ Candidate<T> block_best;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    Candidate<T> other{__shfl_down_sync(kFullMask, candidate.value, offset),
                       __shfl_down_sync(kFullMask, candidate.index, offset)};
    candidate = Better(candidate, other);
  }
  int warp = threadIdx.x / kWarpSize;
  if (threadIdx.x % kWarpSize == 0) warp_best[warp] = candidate;
  __syncthreads();
  if (threadIdx.x == 0) {
    Candidate<T> best = warp_best[0];
    for (int w = 1; w < kRowWarps; ++w) best = Better(best, warp_best[w]);
    block_best = best;
  }
  __syncthreads();
  return block_best;
}

// Selects the k highest-ranked of value_at(0 .. count) in rank order and
// calls emit(j, pick) on thread 0 for each. The ranking is a strict total
// order, so pick j is the best of the values ranking after pick j - 1.
template <typename T, typename ValueAt, typename Emit>
__device__ void BlockTopK(int64_t count, int64_t k, ValueAt value_at, Emit emit) {
  Candidate<T> previous{T(0), -1};
  for (int64_t j = 0; j < k; ++j) {
    Candidate<T> best{T(0), -1};
    for (long long i = threadIdx.x; i < count; i += blockDim.x) {
      T value = value_at(i);
      if (previous.index >= 0 && !RanksBefore(previous.value, previous.index, value, i)) continue;
      best = Better(best, Candidate<T>{value, i});
    }
    best = BlockBest(best);
    if (threadIdx.x == 0) emit(j, best);
    previous = best;
  }
}

// ---------------------------------------------------------- block reduce

struct AddOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
// NaN wins, as in the CPU's LogSumExp.
struct NanMaxOp {
  __device__ double operator()(double a, double b) const {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return a > b ? a : b;
  }
};

// op over the block's values, in a fixed order; returned to every thread.
template <typename Op>
__device__ double BlockReduce(double value, Op op) {
  __shared__ double warp_values[kRowWarps];
  __shared__ double block_value;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value = op(value, __shfl_down_sync(kFullMask, value, offset));
  }
  if (threadIdx.x % kWarpSize == 0) warp_values[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = warp_values[0];
    for (int w = 1; w < kRowWarps; ++w) total = op(total, warp_values[w]);
    block_value = total;
  }
  __syncthreads();
  return block_value;
}

// log(sum(exp(row))) in double, shifted by the max, as the CPU's LogSumExp.
__device__ double BlockLogSumExp(const float* row, int64_t count) {
  double max = -INFINITY;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    if (isnan(row[i]) || row[i] > max) max = row[i];
  }
  max = BlockReduce(max, NanMaxOp());
  if (isinf(max)) return max;  // all -inf (or an +inf): avoid inf - inf
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += exp(row[i] - max);
  return max + log(BlockReduce(sum, AddOp()));
}

__device__ int64_t LoadId(const void* ids, bool ids_are_i64, int64_t position) {
  return ids_are_i64 ? static_cast<const int64_t*>(ids)[position]
                     : static_cast<const int32_t*>(ids)[position];
}

// ------------------------------------------------------------ top_k, gate

__global__ void __launch_bounds__(kRowThreads)
    TopKKernel(const float* x, int64_t rows, int64_t count, int64_t k, float* values,
               int64_t* indices) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * count;
    BlockTopK<float>(
        count, k, [&](int64_t i) { return row[i]; },
        [&](int64_t j, Candidate<float> pick) {
          values[r * k + j] = pick.value;
          indices[r * k + j] = pick.index;
        });
  }
}

__global__ void __launch_bounds__(kRowThreads)
    MoeGateKernel(const float* logits, int64_t tokens, int64_t experts, int64_t top_k,
                  bool normalize, float* weights, int64_t* expert_ids) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float* row = logits + t * experts;
    double log_sum_exp = BlockLogSumExp(row, experts);
    // Recomputed where needed: the same expression gives the same double.
    auto probability = [&](int64_t i) { return exp(row[i] - log_sum_exp); };
    double selected = 0.0;  // thread 0's, summed in rank order as the CPU
    BlockTopK<double>(experts, top_k, probability, [&](int64_t j, Candidate<double> pick) {
      expert_ids[t * top_k + j] = pick.index;
      selected += pick.value;
    });
    if (threadIdx.x == 0) {
      for (int64_t j = 0; j < top_k; ++j) {
        double p = probability(expert_ids[t * top_k + j]);
        weights[t * top_k + j] = static_cast<float>(normalize ? p / selected : p);
      }
    }
  }
}

__global__ void __launch_bounds__(kRowThreads)
    MoeGateGradKernel(const float* logits, const void* ids, bool ids_are_i64,
                      const float* weights_grad, int64_t tokens, int64_t experts, int64_t slots,
                      bool normalize, float* logits_grad, unsigned* error_flags) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float* row = logits + t * experts;
    const float* dw = weights_grad + t * slots;
    double log_sum_exp = BlockLogSumExp(row, experts);
    auto probability = [&](int64_t i) { return exp(row[i] - log_sum_exp); };
    auto expert_of = [&](int64_t j) {
      int64_t e = LoadId(ids, ids_are_i64, t * slots + j);
      return e >= 0 && e < experts ? e : int64_t{-1};
    };
    // Every thread sums the few slots itself, in the CPU's order.
    double selected = 0.0;
    double weighted = 0.0;  // sum_j dw_j p[e_j]
    for (int64_t j = 0; j < slots; ++j) {
      int64_t e = expert_of(j);
      if (e < 0) {
        if (threadIdx.x == 0) atomicOr(error_flags, kIndexOutOfRange);
        continue;
      }
      double p = probability(e);
      selected += p;
      weighted += static_cast<double>(dw[j]) * p;
    }
    double correction = weighted / (selected * selected);
    // dp_i, its slots added in slot order as on the CPU.
    auto dp_of = [&](int64_t i) {
      double dp = 0.0;
      for (int64_t j = 0; j < slots; ++j) {
        if (expert_of(j) != i) continue;
        dp += normalize ? static_cast<double>(dw[j]) / selected - correction
                        : static_cast<double>(dw[j]);
      }
      return dp;
    };
    double expected_dp = 0.0;
    for (int64_t i = threadIdx.x; i < experts; i += blockDim.x) {
      expected_dp += dp_of(i) * probability(i);
    }
    expected_dp = BlockReduce(expected_dp, AddOp());
    for (int64_t i = threadIdx.x; i < experts; i += blockDim.x) {
      double p = probability(i);
      logits_grad[t * experts + i] = static_cast<float>(p * (dp_of(i) - expected_dp));
    }
  }
}

// ----------------------------------------------------------------- routing

// Device arrays of one moe_experts(_grad) launch, carved from its scratch.
// Rows are (token, slot) pairs; slot s = t * k + j; sorted row r is the r-th
// in expert order (by expert, then by slot).
struct ExpertsScratch {
  int* chunk_base = nullptr;    // [chunks, E]: the chunk's count, then the rows of earlier chunks
  int* local_rank = nullptr;    // [R]: rank among the chunk's earlier slots of its expert
  int* offsets = nullptr;       // [E + 1]: each expert's first sorted row; [E]: routed rows
  int* tile_offsets = nullptr;  // [E + 1]: each expert's first row tile (RowTileRows); [E]: all
  int* order = nullptr;         // [R]: sorted row -> slot
  int* position = nullptr;      // [R]: slot -> sorted row, -1 for a bad expert id
  float* projected = nullptr;   // [R, 2I]: [g; u]; in the backward then [dg; du]
  float* activation = nullptr;  // [R, I]: silu(g) * u
  float* hidden_rows = nullptr;  // [R, H]: down a (forward); gate_up^T [dg; du] (backward)
  float* activation_grad = nullptr;  // [R, I], backward: down^T dy
};

// Lays the arrays out from `base` (null to measure), each 256-byte aligned;
// returns the bytes used.
size_t LayOutScratch(const MoeExpertsShape& shape, bool backward, char* base,
                     ExpertsScratch* scratch) {
  const int64_t rows = shape.tokens * shape.slots;
  const int64_t chunks = (rows + kRouteChunk - 1) / kRouteChunk;
  size_t used = 0;
  auto take = [&](auto*& array, int64_t count) {
    using Element = std::remove_reference_t<decltype(*array)>;
    array = base ? reinterpret_cast<Element*>(base + used) : nullptr;
    used += (static_cast<size_t>(count) * sizeof(Element) + 255) / 256 * 256;
  };
  take(scratch->chunk_base, chunks * shape.experts);
  take(scratch->local_rank, rows);
  take(scratch->offsets, shape.experts + 1);
  take(scratch->tile_offsets, shape.experts + 1);
  take(scratch->order, rows);
  take(scratch->position, rows);
  take(scratch->projected, rows * 2 * shape.intermediate);
  take(scratch->activation, rows * shape.intermediate);
  take(scratch->hidden_rows, rows * shape.hidden);
  if (backward) take(scratch->activation_grad, rows * shape.intermediate);
  return used;
}

// Per chunk of kRouteChunk slots (one block of as many threads): each slot's
// rank among the chunk's earlier slots of its expert, and the chunk's count
// per expert, written by the last slot of each expert. Bad ids are flagged.
__global__ void __launch_bounds__(kRouteChunk)
    RouteCountKernel(const void* ids, bool ids_are_i64, int rows, int experts,
                     int* chunk_counts, int* local_rank, unsigned* error_flags) {
  __shared__ int chunk_ids[kRouteChunk];
  int* counts = chunk_counts + static_cast<int64_t>(blockIdx.x) * experts;
  for (int e = threadIdx.x; e < experts; e += blockDim.x) counts[e] = 0;
  int slot = blockIdx.x * kRouteChunk + threadIdx.x;
  int id = -1;
  if (slot < rows) {
    int64_t raw = LoadId(ids, ids_are_i64, slot);
    if (raw >= 0 && raw < experts) {
      id = static_cast<int>(raw);
    } else {
      atomicOr(error_flags, kIndexOutOfRange);
    }
  }
  chunk_ids[threadIdx.x] = id;
  __syncthreads();  // also orders the zeroing of counts before the writes below
  if (id < 0) return;
  int rank = 0;
  for (int l = 0; l < static_cast<int>(threadIdx.x); ++l) rank += chunk_ids[l] == id;
  local_rank[slot] = rank;
  bool last = true;
  for (int l = threadIdx.x + 1; l < kRouteChunk; ++l) last = last && chunk_ids[l] != id;
  if (last) counts[id] = rank + 1;
}

// One block: turns the chunk counts into each chunk's base within its
// expert, then the expert offsets and the offsets of row tiles of `tile_rows`.
__global__ void RouteScanKernel(int chunks, int experts, int tile_rows, int* chunk_base,
                                int* offsets, int* tile_offsets) {
  for (int e = threadIdx.x; e < experts; e += blockDim.x) {
    int running = 0;
    for (int c = 0; c < chunks; ++c) {
      int* entry = chunk_base + static_cast<int64_t>(c) * experts + e;
      int count = *entry;
      *entry = running;
      running += count;
    }
    offsets[e + 1] = running;  // the count, scanned below
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  offsets[0] = 0;
  tile_offsets[0] = 0;
  for (int e = 0; e < experts; ++e) {
    int count = offsets[e + 1];
    offsets[e + 1] = offsets[e] + count;
    tile_offsets[e + 1] = tile_offsets[e] + (count + tile_rows - 1) / tile_rows;
  }
}

__global__ void RouteScatterKernel(const void* ids, bool ids_are_i64, int rows, int experts,
                                   const int* chunk_base, const int* local_rank,
                                   const int* offsets, int* order, int* position) {
  for (int slot = blockIdx.x * blockDim.x + threadIdx.x; slot < rows;
       slot += gridDim.x * blockDim.x) {
    int64_t e = LoadId(ids, ids_are_i64, slot);
    if (e < 0 || e >= experts) {
      position[slot] = -1;
      continue;
    }
    int sorted = offsets[e] + chunk_base[static_cast<int64_t>(slot / kRouteChunk) * experts + e] +
                 local_rank[slot];
    order[sorted] = slot;
    position[slot] = sorted;
  }
}

// ------------------------------------------------------------ grouped GEMM

using ATile = float[kTileDepth][kTileRows + kTilePad];
using BTile = float[kTileDepth][kTileCols + kTilePad];

// acc (this thread's 4 x 4 outputs at rows 4 ty.., cols 4 tx..) += a^T b.
__device__ void MultiplyTile(const ATile& a, const BTile& b, int ty, int tx, float (&acc)[4][4]) {
#pragma unroll
  for (int kk = 0; kk < kTileDepth; ++kk) {
    float4 av = *reinterpret_cast<const float4*>(&a[kk][ty * 4]);
    float4 bv = *reinterpret_cast<const float4*>(&b[kk][tx * 4]);
    float as[4] = {av.x, av.y, av.z, av.w};
    float bs[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(as[i], bs[j], acc[i][j]);
    }
  }
}

// Rows of an operand indexed by sorted row r: a token's row (order[r] / k)
// of a [T, stride] tensor, or row r of a [R, stride] scratch array.
struct RowSource {
  const float* data = nullptr;
  int64_t stride = 0;
  bool by_token = false;

  __device__ const float* Row(int r, const int* order, int slots) const {
    int64_t source = by_token ? order[r] / slots : r;
    return data + source * stride;
  }
};

// The expert whose rows row tile `tile` (< tile_offsets[E]) covers: the
// last whose first tile is at or before it; experts without rows share their
// first tile with the next, so it has rows.
__device__ int ExpertOfTile(int tile, const int* tile_offsets, int experts) {
  int lo = 0, hi = experts - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (tile_offsets[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// rows[i] = the operand row of sorted row row_begin + i, null past row_end
// (the first kTileRows threads write; the caller's barrier publishes them).
__device__ void LoadRowPointers(const RowSource& source, int row_begin, int row_end,
                                const int* order, int slots, const float* (&rows)[kTileRows]) {
  if (threadIdx.x < kTileRows) {
    int r = row_begin + threadIdx.x;
    rows[threadIdx.x] = r < row_end ? source.Row(r, order, slots) : nullptr;
  }
}

// C[r, :] = A_r B_e for each expert e's sorted rows r, B_e [depth, n] (or
// stored [n, depth] when transposed: a weight applied as W a).
struct RowsGemm {
  RowSource a;
  const float* b = nullptr;
  int64_t b_expert_stride = 0;
  bool b_transposed = false;
  float* c = nullptr;  // [R, n]
  int64_t n = 0;
  int64_t depth = 0;
};

// Grid (row tiles, column tiles): row tile blockIdx.x is tile
// blockIdx.x - tile_offsets[e] of the expert e it falls in; the grid covers
// the worst case and tiles past tile_offsets[E] exit.
__global__ void __launch_bounds__(kGemmThreads)
    GroupedRowsGemmKernel(RowsGemm g, const int* offsets, const int* tile_offsets,
                          const int* order, int experts, int slots) {
  __shared__ __align__(16) ATile a_tile;
  __shared__ __align__(16) BTile b_tile;
  __shared__ const float* a_rows[kTileRows];
  const int tile = blockIdx.x;
  if (tile >= tile_offsets[experts]) return;
  const int e = ExpertOfTile(tile, tile_offsets, experts);
  const int row_begin = offsets[e] + (tile - tile_offsets[e]) * kTileRows;
  const int row_end = offsets[e + 1];
  const int64_t col_begin = static_cast<int64_t>(blockIdx.y) * kTileCols;
  LoadRowPointers(g.a, row_begin, row_end, order, slots, a_rows);
  const float* b = g.b + e * g.b_expert_stride;
  const int tx = threadIdx.x % 16;
  const int ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < g.depth; k0 += kTileDepth) {
    __syncthreads();  // a_rows written; the previous tiles consumed
    for (int l = threadIdx.x; l < kTileRows * kTileDepth; l += kGemmThreads) {
      int m = l / kTileDepth;  // consecutive threads read along a row
      int kk = l % kTileDepth;
      const float* row = a_rows[m];
      a_tile[kk][m] = row && k0 + kk < g.depth ? row[k0 + kk] : 0.0f;
    }
    for (int l = threadIdx.x; l < kTileCols * kTileDepth; l += kGemmThreads) {
      // Consecutive threads read consecutive addresses in either layout.
      int n = g.b_transposed ? l / kTileDepth : l % kTileCols;
      int kk = g.b_transposed ? l % kTileDepth : l / kTileCols;
      int64_t col = col_begin + n;
      int64_t depth = k0 + kk;
      float value = 0.0f;
      if (col < g.n && depth < g.depth) {
        value = b[g.b_transposed ? col * g.depth + depth : depth * g.n + col];
      }
      b_tile[kk][n] = value;
    }
    __syncthreads();
    MultiplyTile(a_tile, b_tile, ty, tx, acc);
  }
  for (int i = 0; i < 4; ++i) {
    int64_t r = row_begin + ty * 4 + i;
    if (r >= row_end) continue;
    for (int j = 0; j < 4; ++j) {
      int64_t col = col_begin + tx * 4 + j;
      if (col < g.n) g.c[r * g.n + col] = acc[i][j];
    }
  }
}

// C_e[m, n] = sum over expert e's sorted rows r of
// scale_r * left_r[m] * right_r[n], scale_r = weights[order[r]] if given,
// else 1: a weight gradient. Grid (n tiles, m tiles, E); an expert without
// rows gets zeros.
struct OuterGemm {
  RowSource left;
  RowSource right;
  const float* weights = nullptr;  // [T * k], or null
  float* c = nullptr;              // [E, m, n]
  int64_t m = 0;
  int64_t n = 0;
};

// The operand rows and scales of sorted rows k0.. of one depth step (null
// and 1 past row_end); the first kDepth threads write, the caller's barrier
// publishes them.
template <int kDepth>
__device__ void LoadOuterRows(const OuterGemm& g, int k0, int row_end, const int* order,
                              int slots, const float* (&left)[kDepth],
                              const float* (&right)[kDepth], float (&scales)[kDepth]) {
  if (threadIdx.x < kDepth) {
    int r = k0 + threadIdx.x;
    bool in = r < row_end;
    left[threadIdx.x] = in ? g.left.Row(r, order, slots) : nullptr;
    right[threadIdx.x] = in ? g.right.Row(r, order, slots) : nullptr;
    scales[threadIdx.x] = in && g.weights ? g.weights[order[r]] : 1.0f;
  }
}

__global__ void __launch_bounds__(kGemmThreads)
    GroupedOuterGemmKernel(OuterGemm g, const int* offsets, const int* order, int slots) {
  __shared__ __align__(16) ATile a_tile;
  __shared__ __align__(16) BTile b_tile;
  __shared__ const float* left_rows[kTileDepth];
  __shared__ const float* right_rows[kTileDepth];
  __shared__ float scales[kTileDepth];
  const int e = blockIdx.z;
  const int row_begin = offsets[e];
  const int row_end = offsets[e + 1];
  const int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kTileRows;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.x) * kTileCols;
  const int tx = threadIdx.x % 16;
  const int ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int k0 = row_begin; k0 < row_end; k0 += kTileDepth) {
    __syncthreads();  // the previous tiles and row pointers consumed
    LoadOuterRows(g, k0, row_end, order, slots, left_rows, right_rows, scales);
    __syncthreads();
    for (int l = threadIdx.x; l < kTileRows * kTileDepth; l += kGemmThreads) {
      int kk = l / kTileRows;
      int m = l % kTileRows;
      const float* row = left_rows[kk];
      a_tile[kk][m] = row && m_begin + m < g.m ? row[m_begin + m] * scales[kk] : 0.0f;
    }
    for (int l = threadIdx.x; l < kTileCols * kTileDepth; l += kGemmThreads) {
      int kk = l / kTileCols;
      int n = l % kTileCols;
      const float* row = right_rows[kk];
      b_tile[kk][n] = row && n_begin + n < g.n ? row[n_begin + n] : 0.0f;
    }
    __syncthreads();
    MultiplyTile(a_tile, b_tile, ty, tx, acc);
  }
  float* c = g.c + e * g.m * g.n;
  for (int i = 0; i < 4; ++i) {
    int64_t m = m_begin + ty * 4 + i;
    if (m >= g.m) continue;
    for (int j = 0; j < 4; ++j) {
      int64_t n = n_begin + tx * 4 + j;
      if (n < g.n) c[m * g.n + n] = acc[i][j];
    }
  }
}

// ---------------------------------------------- bf16 tensor-core GEMMs
//
// The same two GEMMs at bf16 precision: operands round to bf16 as they enter
// shared memory and products accumulate in fp32 on the tensor cores (wmma
// 16 x 16 x 16), as cuBLASLt's bf16 GEMMs do. Tiles are 128 x 128 outputs,
// 32 deep; warp w owns the 64 x 32 outputs at rows 64 (w / 4), cols
// 32 (w % 4) as 4 x 2 fragments. Each thread loads its share of the next depth
// step into registers while the tensor cores work on the current one, then
// stores it into the other of two shared buffers: one barrier a step.
// Operands load as float4 where rows are 16-byte aligned.

constexpr int kBf16Rows = 128;  // output rows of a tile: the rows GEMM's row tile
constexpr int kBf16Cols = 128;
constexpr int kBf16Depth = 32;
// Rows of a multiple of 16 bytes (wmma's leading dimension), off the banks' period.
constexpr int kBf16Pad = 8;
constexpr int kDeepRow = kBf16Depth + kBf16Pad;  // a [128][depth] tile's row
constexpr int kWideRow = kBf16Cols + kBf16Pad;   // a [depth][128] tile's row
constexpr int kWarpRows = 64;
constexpr int kWarpCols = 32;
constexpr int kColWarps = kBf16Cols / kWarpCols;  // 4 across, 2 down
constexpr int kRowFragments = kWarpRows / 16;
constexpr int kColFragments = kWarpCols / 16;
// float4 loads per thread per operand and depth step.
constexpr int kStepLoads = kBf16Rows * kBf16Depth / 4 / kGemmThreads;
// bf16 elements of one operand tile in either layout.
constexpr int kOperandTile =
    kBf16Rows * kDeepRow > kBf16Depth * kWideRow ? kBf16Rows * kDeepRow : kBf16Depth * kWideRow;
static_assert(kGemmThreads / kWarpSize == (kBf16Rows / kWarpRows) * kColWarps,
              "the warps cover the tile");
static_assert(2 * 2 * kOperandTile * 2 >= kGemmThreads / kWarpSize * 256 * 4,
              "the output stage fits in the operand buffers");

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// p[0 .. 4), of which the first `valid` exist (the rest read as zero).
__device__ float4 LoadFour(const float* p, int64_t valid, bool vector) {
  if (vector && valid >= 4) return *reinterpret_cast<const float4*>(p);
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (valid > 0) v.x = p[0];
  if (valid > 1) v.y = p[1];
  if (valid > 2) v.z = p[2];
  if (valid > 3) v.w = p[3];
  return v;
}

__device__ float4 Scaled(float4 v, float scale) {
  return make_float4(v.x * scale, v.y * scale, v.z * scale, v.w * scale);
}

__device__ void StoreFour(__nv_bfloat16* to, float4 v) {
  reinterpret_cast<__nv_bfloat162*>(to)[0] = __floats2bfloat162_rn(v.x, v.y);
  reinterpret_cast<__nv_bfloat162*>(to)[1] = __floats2bfloat162_rn(v.z, v.w);
}

using AccumulatorFragment = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;
using WarpAccumulators = AccumulatorFragment[kRowFragments][kColFragments];

// The operand tiles: two buffers of [a, b], reused as the output stage.
struct Bf16Tiles {
  __nv_bfloat16 operand[2][2][kOperandTile];
};

// Writes this warp's fragments at (row0, col0) of C [rows, ldc], rows <
// row_end and cols < n only, through its 16 x 16 floats of `stage`.
__device__ void StoreFragments(WarpAccumulators& acc, float* stage, float* c, int64_t ldc,
                               int64_t row0, int64_t row_end, int64_t col0, int64_t n) {
  const int lane = threadIdx.x % kWarpSize;
  for (int i = 0; i < kRowFragments; ++i) {
    if (row0 + 16 * i >= row_end) break;
    for (int j = 0; j < kColFragments; ++j) {
      nvcuda::wmma::store_matrix_sync(stage, acc[i][j], 16, nvcuda::wmma::mem_row_major);
      __syncwarp();
      for (int l = lane; l < 256; l += kWarpSize) {
        int64_t r = row0 + 16 * i + l / 16;
        int64_t col = col0 + 16 * j + l % 16;
        if (r < row_end && col < n) c[r * ldc + col] = stage[l];
      }
      __syncwarp();
    }
  }
}

// acc += a b over one depth step of the tiles; the warp's fragment rows at
// or past `live_rows` (of the tile) hold no output and are skipped.
template <typename ALayout, typename BLayout>
__device__ void MultiplyBf16Step(const __nv_bfloat16* a_tile, const __nv_bfloat16* b_tile,
                                 int warp_row, int warp_col, int live_rows,
                                 WarpAccumulators& acc) {
  using namespace nvcuda;
  constexpr bool kAColMajor = std::is_same_v<ALayout, wmma::col_major>;  // a [k][m]
  constexpr bool kBColMajor = std::is_same_v<BLayout, wmma::col_major>;  // b [n][k]
#pragma unroll
  for (int k = 0; k < kBf16Depth; k += 16) {
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, BLayout> b_frag[kColFragments];
#pragma unroll
    for (int j = 0; j < kColFragments; ++j) {
      int col = warp_col + 16 * j;
      if (kBColMajor) {
        wmma::load_matrix_sync(b_frag[j], b_tile + col * kDeepRow + k, kDeepRow);
      } else {
        wmma::load_matrix_sync(b_frag[j], b_tile + k * kWideRow + col, kWideRow);
      }
    }
#pragma unroll
    for (int i = 0; i < kRowFragments; ++i) {
      int row = warp_row + 16 * i;
      if (row >= live_rows) break;  // warp-uniform
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, ALayout> a_frag;
      if (kAColMajor) {
        wmma::load_matrix_sync(a_frag, a_tile + k * kWideRow + row, kWideRow);
      } else {
        wmma::load_matrix_sync(a_frag, a_tile + row * kDeepRow + k, kDeepRow);
      }
#pragma unroll
      for (int j = 0; j < kColFragments; ++j) wmma::mma_sync(acc[i][j], a_frag, b_frag[j], acc[i][j]);
    }
  }
}

__device__ void ZeroFragments(WarpAccumulators& acc) {
  for (int i = 0; i < kRowFragments; ++i) {
    for (int j = 0; j < kColFragments; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);
  }
}

// Chunk c (< kBf16Rows * kBf16Depth / 4) of a step, as float4s: in a
// [128][depth] tile at row c / 8, depth (c % 8) * 4; in a [depth][128] tile at
// depth c / 32, col (c % 32) * 4. Thread t takes chunks t + i kGemmThreads.
__device__ int StepChunk(int i) { return threadIdx.x + i * kGemmThreads; }
constexpr int kDeepChunks = kBf16Depth / 4;
constexpr int kWideChunks = kBf16Cols / 4;

// One block an SM: its 8 warps keep 4 x 2 fragments and the next step's
// operands in ~210 registers each (two blocks would spill them).
template <bool kBTransposed>
__global__ void __launch_bounds__(kGemmThreads, 1)
    GroupedRowsGemmBf16Kernel(RowsGemm g, const int* offsets, const int* tile_offsets,
                              const int* order, int experts, int slots, bool a_vector,
                              bool b_vector) {
  using namespace nvcuda;
  // b [n][k] when stored transposed, else [k][n].
  using BLayout = std::conditional_t<kBTransposed, wmma::col_major, wmma::row_major>;
  __shared__ __align__(32) Bf16Tiles tiles;
  const int tile = blockIdx.x;
  if (tile >= tile_offsets[experts]) return;
  const int e = ExpertOfTile(tile, tile_offsets, experts);
  const int row_begin = offsets[e] + (tile - tile_offsets[e]) * kBf16Rows;
  const int row_end = offsets[e + 1];
  const int64_t col_begin = static_cast<int64_t>(blockIdx.y) * kBf16Cols;
  const float* b = g.b + e * g.b_expert_stride;
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const float* a_rows[kStepLoads];  // this thread's rows of A, the same every step
#pragma unroll
  for (int i = 0; i < kStepLoads; ++i) {
    int r = row_begin + StepChunk(i) / kDeepChunks;
    a_rows[i] = r < row_end ? g.a.Row(r, order, slots) : nullptr;
  }
  float4 a_next[kStepLoads];
  float4 b_next[kStepLoads];
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int i = 0; i < kStepLoads; ++i) {
      const int c = StepChunk(i);
      const int64_t deep = k0 + c % kDeepChunks * 4;
      a_next[i] = a_rows[i] ? LoadFour(a_rows[i] + deep, g.depth - deep, a_vector) : zero;
      if (kBTransposed) {  // b [n, depth]: rows along depth
        const int64_t col = col_begin + c / kDeepChunks;
        b_next[i] = col < g.n ? LoadFour(b + col * g.depth + deep, g.depth - deep, b_vector) : zero;
      } else {  // b [depth, n]: rows along n
        const int64_t depth = k0 + c / kWideChunks;
        const int64_t col = col_begin + c % kWideChunks * 4;
        b_next[i] = depth < g.depth ? LoadFour(b + depth * g.n + col, g.n - col, b_vector) : zero;
      }
    }
  };
  auto store = [&](int buffer) {
#pragma unroll
    for (int i = 0; i < kStepLoads; ++i) {
      const int c = StepChunk(i);
      StoreFour(&tiles.operand[buffer][0][c / kDeepChunks * kDeepRow + c % kDeepChunks * 4],
                a_next[i]);
      if (kBTransposed) {
        StoreFour(&tiles.operand[buffer][1][c / kDeepChunks * kDeepRow + c % kDeepChunks * 4],
                  b_next[i]);
      } else {
        StoreFour(&tiles.operand[buffer][1][c / kWideChunks * kWideRow + c % kWideChunks * 4],
                  b_next[i]);
      }
    }
  };
  const int warp = threadIdx.x / kWarpSize;
  const int warp_row = kWarpRows * (warp / kColWarps);
  const int warp_col = kWarpCols * (warp % kColWarps);
  const int live_rows = row_end - row_begin;
  WarpAccumulators acc;
  ZeroFragments(acc);
  load(0);
  store(0);
  __syncthreads();
  int buffer = 0;
  for (int64_t k0 = 0; k0 < g.depth; k0 += kBf16Depth) {
    const bool more = k0 + kBf16Depth < g.depth;
    if (more) load(k0 + kBf16Depth);
    MultiplyBf16Step<wmma::row_major, BLayout>(tiles.operand[buffer][0], tiles.operand[buffer][1],
                                               warp_row, warp_col, live_rows, acc);
    if (more) store(buffer ^ 1);
    __syncthreads();  // the next buffer written; this one free
    buffer ^= 1;
  }
  float* stage = reinterpret_cast<float*>(&tiles) + warp * 256;
  StoreFragments(acc, stage, g.c, g.n, row_begin + warp_row, row_end, col_begin + warp_col, g.n);
}

__global__ void __launch_bounds__(kGemmThreads, 2)
    GroupedOuterGemmBf16Kernel(OuterGemm g, const int* offsets, const int* order, int slots,
                               bool left_vector, bool right_vector) {
  using namespace nvcuda;
  __shared__ __align__(32) Bf16Tiles tiles;  // [k][m] and [k][n]
  const int e = blockIdx.z;
  const int row_begin = offsets[e];
  const int row_end = offsets[e + 1];
  const int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kBf16Rows;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.x) * kBf16Cols;
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float4 left_next[kStepLoads];
  float4 right_next[kStepLoads];
  // Sorted rows k0.. are the depth: row k0 + c / 32 gives chunk c's values,
  // the left one scaled by the row's weight.
  auto load = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kStepLoads; ++i) {
      const int c = StepChunk(i);
      const int r = k0 + c / kWideChunks;
      const int64_t x = c % kWideChunks * 4;
      left_next[i] = zero;
      right_next[i] = zero;
      if (r < row_end) {
        const float scale = g.weights ? g.weights[order[r]] : 1.0f;
        left_next[i] = Scaled(
            LoadFour(g.left.Row(r, order, slots) + m_begin + x, g.m - m_begin - x, left_vector),
            scale);
        right_next[i] =
            LoadFour(g.right.Row(r, order, slots) + n_begin + x, g.n - n_begin - x, right_vector);
      }
    }
  };
  auto store = [&](int buffer) {
#pragma unroll
    for (int i = 0; i < kStepLoads; ++i) {
      const int c = StepChunk(i);
      const int at = c / kWideChunks * kWideRow + c % kWideChunks * 4;
      StoreFour(&tiles.operand[buffer][0][at], left_next[i]);
      StoreFour(&tiles.operand[buffer][1][at], right_next[i]);
    }
  };
  const int warp = threadIdx.x / kWarpSize;
  const int warp_row = kWarpRows * (warp / kColWarps);
  const int warp_col = kWarpCols * (warp % kColWarps);
  const int live_rows = static_cast<int>(g.m - m_begin < kBf16Rows ? g.m - m_begin : kBf16Rows);
  WarpAccumulators acc;
  ZeroFragments(acc);
  if (row_begin < row_end) {
    load(row_begin);
    store(0);
  }
  __syncthreads();
  int buffer = 0;
  for (int k0 = row_begin; k0 < row_end; k0 += kBf16Depth) {
    const bool more = k0 + kBf16Depth < row_end;
    if (more) load(k0 + kBf16Depth);
    MultiplyBf16Step<wmma::col_major, wmma::row_major>(
        tiles.operand[buffer][0], tiles.operand[buffer][1], warp_row, warp_col, live_rows, acc);
    if (more) store(buffer ^ 1);
    __syncthreads();
    buffer ^= 1;
  }
  float* stage = reinterpret_cast<float*>(&tiles) + warp * 256;
  StoreFragments(acc, stage, g.c + e * g.m * g.n, g.n, m_begin + warp_row, g.m,
                 n_begin + warp_col, g.n);
}

// Row tiles of the rows GEMM in the math `bf16` picks.
int RowTileRows(bool bf16) { return bf16 ? kBf16Rows : kTileRows; }

// The grids of the two GEMMs, in the math `shape.bf16` picks.
void RunRowsGemm(const MoeExpertsShape& shape, const RowsGemm& g, const ExpertsScratch& s,
                 cudaStream_t stream) {
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const int slots = static_cast<int>(shape.slots);
  // Each expert's partial tile adds at most one to the full ones.
  const int tile_rows = RowTileRows(shape.bf16);
  if (shape.bf16) {
    const dim3 grid(CeilDiv(rows, tile_rows) + experts, CeilDiv(g.n, kBf16Cols));
    // float4 loads need every row 16-byte aligned.
    const bool a_vector = Aligned16(g.a.data) && g.a.stride % 4 == 0;
    const bool b_vector = Aligned16(g.b) && g.b_expert_stride % 4 == 0 &&
                          (g.b_transposed ? g.depth : g.n) % 4 == 0;
    if (g.b_transposed) {
      GroupedRowsGemmBf16Kernel<true><<<grid, kGemmThreads, 0, stream>>>(
          g, s.offsets, s.tile_offsets, s.order, experts, slots, a_vector, b_vector);
    } else {
      GroupedRowsGemmBf16Kernel<false><<<grid, kGemmThreads, 0, stream>>>(
          g, s.offsets, s.tile_offsets, s.order, experts, slots, a_vector, b_vector);
    }
  } else {
    const dim3 grid(CeilDiv(rows, tile_rows) + experts, CeilDiv(g.n, kTileCols));
    GroupedRowsGemmKernel<<<grid, kGemmThreads, 0, stream>>>(g, s.offsets, s.tile_offsets,
                                                             s.order, experts, slots);
  }
}

void RunOuterGemm(const MoeExpertsShape& shape, const OuterGemm& g, const ExpertsScratch& s,
                  cudaStream_t stream) {
  const int slots = static_cast<int>(shape.slots);
  const unsigned experts = static_cast<unsigned>(shape.experts);
  if (shape.bf16) {
    const dim3 grid(CeilDiv(g.n, kBf16Cols), CeilDiv(g.m, kBf16Rows), experts);
    const bool left_vector = Aligned16(g.left.data) && g.left.stride % 4 == 0;
    const bool right_vector = Aligned16(g.right.data) && g.right.stride % 4 == 0;
    GroupedOuterGemmBf16Kernel<<<grid, kGemmThreads, 0, stream>>>(g, s.offsets, s.order, slots,
                                                                  left_vector, right_vector);
  } else {
    const dim3 grid(CeilDiv(g.n, kTileCols), CeilDiv(g.m, kTileRows), experts);
    GroupedOuterGemmKernel<<<grid, kGemmThreads, 0, stream>>>(g, s.offsets, s.order, slots);
  }
}

// ------------------------------------------------------- SwiGLU, combine

// activation[r, c] = silu(g) * u for the routed rows, [g; u] = projected[r].
__global__ void SwigluKernel(const float* projected, int64_t rows, int64_t intermediate,
                             const int* offsets, int experts, float* activation) {
  const int64_t routed = offsets[experts];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < rows * intermediate; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i / intermediate;
    if (r >= routed) continue;
    int64_t c = i % intermediate;
    float g = projected[r * 2 * intermediate + c];
    float u = projected[r * 2 * intermediate + intermediate + c];
    activation[i] = g / (1.0f + expf(-g)) * u;
  }
}

// One warp per slot s (sorted row r): weights_grad[s] = dy . (down a) =
// (down^T dy) . a, and [g; u] in projected[r] becomes [dg; du] from
// da = weights[s] (down^T dy). A slot with a bad expert id gets 0.
__global__ void SwigluGradKernel(const float* activation_grad, const float* activation,
                                 const float* weights, const int* position, int64_t rows,
                                 int64_t intermediate, float* projected, float* weights_grad) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarpSize);
  for (int64_t slot = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarpSize;
       slot < rows; slot += warps) {
    const int r = position[slot];
    float dot = 0.0f;
    if (r >= 0) {
      const float weight = weights[slot];
      const float* da_row = activation_grad + static_cast<int64_t>(r) * intermediate;
      const float* a_row = activation + static_cast<int64_t>(r) * intermediate;
      float* gu = projected + static_cast<int64_t>(r) * 2 * intermediate;
      for (int64_t c = lane; c < intermediate; c += kWarpSize) {
        float da = da_row[c];
        dot += da * a_row[c];
        da *= weight;
        float g = gu[c];
        float u = gu[intermediate + c];
        float sigmoid = 1.0f / (1.0f + expf(-g));
        gu[c] = da * u * sigmoid * (1.0f + g * (1.0f - sigmoid));
        gu[intermediate + c] = da * g * sigmoid;
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      dot += __shfl_down_sync(kFullMask, dot, offset);
    }
    if (lane == 0) weights_grad[slot] = dot;
  }
}

// out[t, :] = sum over the token's slots j, in order, of
// weights[t, j] (1 when null) * hidden_rows[position[t k + j], :]; slots
// with a bad expert id add nothing. Deterministic, without atomics.
__global__ void CombineKernel(const float* hidden_rows, const int* position,
                              const float* weights, int64_t tokens, int64_t hidden,
                              int64_t slots, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < tokens * hidden; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = i / hidden;
    int64_t c = i % hidden;
    float sum = 0.0f;
    for (int64_t j = 0; j < slots; ++j) {
      int64_t slot = t * slots + j;
      int r = position[slot];
      if (r < 0) continue;
      float value = hidden_rows[static_cast<int64_t>(r) * hidden + c];
      sum += weights ? weights[slot] * value : value;
    }
    out[i] = sum;
  }
}

// ----------------------------------------------------------- orchestration

// Routes the rows and projects and activates them: the forward's first half,
// which the backward recomputes.
void RouteAndActivate(const MoeExpertsShape& shape, const ExpertsScratch& s, const float* x,
                      const void* ids, bool ids_are_i64, const float* gate_up,
                      unsigned* error_flags, cudaStream_t stream) {
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const int chunks = (rows + kRouteChunk - 1) / kRouteChunk;
  if (chunks > 0) {
    RouteCountKernel<<<chunks, kRouteChunk, 0, stream>>>(ids, ids_are_i64, rows, experts,
                                                         s.chunk_base, s.local_rank, error_flags);
  }
  // Always: the weight gradients read the offsets even when no row is routed.
  RouteScanKernel<<<1, kRouteChunk, 0, stream>>>(
      chunks, experts, RowTileRows(shape.bf16), s.chunk_base, s.offsets, s.tile_offsets);
  if (rows == 0) return;
  RouteScatterKernel<<<BlocksFor(rows, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
      ids, ids_are_i64, rows, experts, s.chunk_base, s.local_rank, s.offsets, s.order,
      s.position);
  const int64_t inter = shape.intermediate;
  if (inter > 0) {
    RowsGemm project;
    project.a = RowSource{x, shape.hidden, true};
    project.b = gate_up;
    project.b_expert_stride = 2 * inter * shape.hidden;
    project.b_transposed = true;
    project.c = s.projected;
    project.n = 2 * inter;
    project.depth = shape.hidden;
    RunRowsGemm(shape, project, s, stream);
    SwigluKernel<<<BlocksFor(rows * inter, kElementwiseThreads), kElementwiseThreads, 0,
                   stream>>>(s.projected, rows, inter, s.offsets, experts, s.activation);
  }
}

}  // namespace

void LaunchTopK(const float* x, int64_t rows, int64_t count, int64_t k, float* values,
                int64_t* indices, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  TopKKernel<<<BlocksFor(rows, 1), kRowThreads, 0, stream>>>(x, rows, count, k, values, indices);
}

void LaunchMoeGate(const float* logits, int64_t tokens, int64_t experts, int64_t top_k,
                   bool normalize, float* weights, int64_t* expert_ids, cudaStream_t stream) {
  if (tokens == 0 || top_k == 0) return;
  MoeGateKernel<<<BlocksFor(tokens, 1), kRowThreads, 0, stream>>>(logits, tokens, experts, top_k,
                                                                  normalize, weights, expert_ids);
}

void LaunchMoeGateGrad(const float* logits, const void* expert_ids, bool ids_are_i64,
                       const float* weights_grad, int64_t tokens, int64_t experts,
                       int64_t slots, bool normalize, float* logits_grad,
                       unsigned* error_flags, cudaStream_t stream) {
  // With no experts there are no logits, but any slot still flags its id.
  if (tokens == 0) return;
  MoeGateGradKernel<<<BlocksFor(tokens, 1), kRowThreads, 0, stream>>>(
      logits, expert_ids, ids_are_i64, weights_grad, tokens, experts, slots, normalize,
      logits_grad, error_flags);
}

bool MoeExpertsLaunchable(const MoeExpertsShape& shape) {
  // Halving INT_MAX leaves room for the grid-stride and chunk arithmetic.
  return shape.tokens * shape.slots <= INT_MAX / 2 && shape.experts <= 65535;
}

size_t MoeExpertsScratchBytes(const MoeExpertsShape& shape, bool backward) {
  ExpertsScratch unused;
  return LayOutScratch(shape, backward, nullptr, &unused);
}

void LaunchMoeExperts(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                      bool ids_are_i64, const float* weights, const float* gate_up,
                      const float* down, float* y, void* scratch, unsigned* error_flags,
                      cudaStream_t stream) {
  ExpertsScratch s;
  LayOutScratch(shape, false, static_cast<char*>(scratch), &s);
  RouteAndActivate(shape, s, x, expert_ids, ids_are_i64, gate_up, error_flags, stream);
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  if (rows > 0 && shape.hidden > 0) {
    RowsGemm project_down;
    project_down.a = RowSource{s.activation, shape.intermediate, false};
    project_down.b = down;
    project_down.b_expert_stride = shape.hidden * shape.intermediate;
    project_down.b_transposed = true;
    project_down.c = s.hidden_rows;
    project_down.n = shape.hidden;
    project_down.depth = shape.intermediate;
    RunRowsGemm(shape, project_down, s, stream);
  }
  const int64_t outputs = shape.tokens * shape.hidden;
  if (outputs > 0) {
    CombineKernel<<<BlocksFor(outputs, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
        s.hidden_rows, s.position, weights, shape.tokens, shape.hidden, shape.slots, y);
  }
}

void LaunchMoeExpertsGrad(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                          bool ids_are_i64, const float* weights, const float* gate_up,
                          const float* down, const float* y_grad, float* x_grad,
                          float* weights_grad, float* gate_up_grad, float* down_grad,
                          void* scratch, unsigned* error_flags, cudaStream_t stream) {
  ExpertsScratch s;
  LayOutScratch(shape, true, static_cast<char*>(scratch), &s);
  RouteAndActivate(shape, s, x, expert_ids, ids_are_i64, gate_up, error_flags, stream);
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const int64_t hidden = shape.hidden;
  const int64_t inter = shape.intermediate;
  if (rows > 0) {
    if (inter > 0) {
      // down^T dy per row: the activation's gradient before the gate weight.
      RowsGemm back_down;
      back_down.a = RowSource{y_grad, hidden, true};
      back_down.b = down;
      back_down.b_expert_stride = hidden * inter;
      back_down.b_transposed = false;  // down[e] is [H, I]: depth H, n I
      back_down.c = s.activation_grad;
      back_down.n = inter;
      back_down.depth = hidden;
      RunRowsGemm(shape, back_down, s, stream);
    }
    constexpr int kWarpsPerBlock = kElementwiseThreads / kWarpSize;
    SwigluGradKernel<<<BlocksFor(rows, kWarpsPerBlock), kElementwiseThreads, 0, stream>>>(
        s.activation_grad, s.activation, weights, s.position, rows, inter, s.projected,
        weights_grad);
  }
  if (experts > 0 && hidden > 0 && inter > 0) {
    OuterGemm grad_down;  // sum_r (w_r dy_t) a_r^T
    grad_down.left = RowSource{y_grad, hidden, true};
    grad_down.right = RowSource{s.activation, inter, false};
    grad_down.weights = weights;
    grad_down.c = down_grad;
    grad_down.m = hidden;
    grad_down.n = inter;
    RunOuterGemm(shape, grad_down, s, stream);
    OuterGemm grad_gate_up;  // sum_r [dg; du]_r x_t^T
    grad_gate_up.left = RowSource{s.projected, 2 * inter, false};
    grad_gate_up.right = RowSource{x, hidden, true};
    grad_gate_up.c = gate_up_grad;
    grad_gate_up.m = 2 * inter;
    grad_gate_up.n = hidden;
    RunOuterGemm(shape, grad_gate_up, s, stream);
  }
  if (rows > 0 && hidden > 0) {
    RowsGemm back_gate_up;  // gate_up[e]^T [dg; du] per row
    back_gate_up.a = RowSource{s.projected, 2 * inter, false};
    back_gate_up.b = gate_up;
    back_gate_up.b_expert_stride = 2 * inter * hidden;
    back_gate_up.b_transposed = false;  // gate_up[e] is [2I, H]: depth 2I, n H
    back_gate_up.c = s.hidden_rows;
    back_gate_up.n = hidden;
    back_gate_up.depth = 2 * inter;
    RunRowsGemm(shape, back_gate_up, s, stream);
  }
  const int64_t outputs = shape.tokens * hidden;
  if (outputs > 0) {
    CombineKernel<<<BlocksFor(outputs, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
        s.hidden_rows, s.position, nullptr, shape.tokens, hidden, shape.slots, x_grad);
  }
}

}  // namespace veomni::runtime::cuda
