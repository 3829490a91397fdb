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
// bf16 GEMM operands' rows pad to a multiple of 8 elements: 16 bytes, the
// unit of cp.async.
constexpr int kBf16Align = 8;
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;  // grid-stride loops cover the rest

unsigned BlocksFor(int64_t work, int64_t per_block) {
  int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks);
}
unsigned CeilDiv(int64_t value, int64_t divisor) {
  return static_cast<unsigned>((value + divisor - 1) / divisor);
}
int64_t PadBf16(int64_t count) { return (count + kBf16Align - 1) / kBf16Align * kBf16Align; }

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
  // At bf16 precision, the GEMMs' operands rounded, rows padded to 8
  // elements (Hp, Ip, 2Ip): sorted rows, and the weights.
  __nv_bfloat16* x_rows = nullptr;           // [R, Hp]
  __nv_bfloat16* gate_up_bf16 = nullptr;     // [E, 2I, Hp]
  __nv_bfloat16* down_bf16 = nullptr;        // [E, H, Ip]
  __nv_bfloat16* activation_bf16 = nullptr;  // [R, Ip]
  __nv_bfloat16* y_grad_rows = nullptr;      // [R, Hp], backward
  __nv_bfloat16* weighted_y_grad_rows = nullptr;  // [R, Hp], backward: times the slot's weight
  __nv_bfloat16* projected_bf16 = nullptr;   // [R, 2Ip], backward: [dg; du]
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
  if (shape.bf16) {
    const int64_t hp = PadBf16(shape.hidden), ip = PadBf16(shape.intermediate);
    take(scratch->x_rows, rows * hp);
    if (!shape.weights_bf16) {  // else the operands themselves
      take(scratch->gate_up_bf16, shape.experts * 2 * shape.intermediate * hp);
      take(scratch->down_bf16, shape.experts * shape.hidden * ip);
    }
    take(scratch->activation_bf16, rows * ip);
    if (backward) {
      take(scratch->y_grad_rows, rows * hp);
      take(scratch->weighted_y_grad_rows, rows * hp);
      take(scratch->projected_bf16, rows * PadBf16(2 * shape.intermediate));
    }
  }
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
// and 1 past row_end); the first kTileDepth threads write, the caller's
// barrier publishes them.
__device__ void LoadOuterRows(const OuterGemm& g, int k0, int row_end, const int* order,
                              int slots, const float* (&left)[kTileDepth],
                              const float* (&right)[kTileDepth], float (&scales)[kTileDepth]) {
  if (threadIdx.x < kTileDepth) {
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
// At bf16 precision the operands are first rounded into bf16 copies:
// the routed rows gathered in sorted order, the expert weights, each row
// padded with zeros to a multiple of 8 elements (16 bytes). The GEMMs then
// stream them with cp.async into a three-stage shared-memory pipeline and
// multiply on the tensor cores (ldmatrix and mma.sync m16n8k16, fp32
// accumulation), as cuBLASLt's bf16 GEMMs do. Tiles are 128 x 128 outputs,
// 64 deep; warp w owns the 64 x 32 outputs at rows 64 (w / 4), cols 32 (w % 4).

constexpr int kBf16Rows = 128;  // output rows of a tile: the rows GEMM's row tile
constexpr int kBf16Cols = 128;
constexpr int kBf16Depth = 64;
constexpr int kBf16Stages = 3;
// Rows of a multiple of 16 bytes (cp.async, ldmatrix), off the banks' period:
// the 8 rows of an 8 x 8 matrix fall in distinct banks.
constexpr int kBf16Pad = 8;
constexpr int kDeepRow = kBf16Depth + kBf16Pad;  // a [128][depth] tile's row
constexpr int kWideRow = kBf16Cols + kBf16Pad;   // a [depth][128] tile's row
constexpr int kWarpRows = 64;
constexpr int kWarpCols = 32;
constexpr int kColWarps = kBf16Cols / kWarpCols;  // 4 across, 2 down
// 16-byte chunks per thread per operand and depth step.
constexpr int kStepChunks = kBf16Rows * kBf16Depth / kBf16Align / kGemmThreads;
constexpr int kDeepChunks = kBf16Depth / kBf16Align;  // per row of a [128][depth] tile
constexpr int kWideChunks = kBf16Cols / kBf16Align;   // per row of a [depth][128] tile
// bf16 elements of one operand tile in either layout.
constexpr int kOperandTile =
    kBf16Rows * kDeepRow > kBf16Depth * kWideRow ? kBf16Rows * kDeepRow : kBf16Depth * kWideRow;
constexpr size_t kBf16SharedBytes = size_t{kBf16Stages} * 2 * kOperandTile * 2;
static_assert(kGemmThreads / kWarpSize == (kBf16Rows / kWarpRows) * kColWarps,
              "the warps cover the tile");

// dst[r, :] = bf16(scale_r * src[source_r, :cols]), zero in [cols, ld), for
// rows r < *row_count (or `rows` when row_count is null): source_r =
// order[r] / slots when `order` is given (a token's row), else r;
// scale_r = weights[order[r]] when weights are given, else 1.
// Blocks stride over rows and threads over a row's pairs of columns: no
// per-element division.
__global__ void ToBf16RowsKernel(const float* src, int64_t src_stride, const int* order,
                                 int slots, const float* weights, const int* row_count,
                                 int64_t rows, int64_t cols, int64_t ld, __nv_bfloat16* dst) {
  const int64_t count = row_count ? *row_count : rows;
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int64_t source = order ? order[r] / slots : r;
    const float scale = weights ? weights[order[r]] : 1.0f;
    const float* row = src + source * src_stride;
    __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(dst + r * ld);
    for (int64_t c = 2 * threadIdx.x; c < ld; c += 2 * blockDim.x) {
      const float v0 = c < cols ? row[c] * scale : 0.0f;
      const float v1 = c + 1 < cols ? row[c + 1] * scale : 0.0f;
      out[c / 2] = __floats2bfloat162_rn(v0, v1);
    }
  }
}

void ToBf16Rows(const float* src, int64_t src_stride, const int* order, int slots,
                const float* weights, const int* row_count, int64_t rows, int64_t cols,
                __nv_bfloat16* dst, cudaStream_t stream) {
  const int64_t ld = PadBf16(cols);
  if (rows == 0 || ld == 0) return;
  ToBf16RowsKernel<<<BlocksFor(rows, 1), kElementwiseThreads, 0, stream>>>(
      src, src_stride, order, slots, weights, row_count, rows, cols, ld, dst);
}

// 16 bytes global -> shared without registers; zeros when !valid (the
// source is then not read).
__device__ void CopyAsync16(void* shared, const void* global, bool valid) {
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(global),
               "r"(valid ? 16 : 0));
}
__device__ void CommitAsync() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ void WaitAsync() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// The warp's 64 x 32 outputs as 4 x 4 tiles of m16n8 mma accumulators:
// acc[i][j][0..1] at (row 16 i + lane / 4, cols 8 j + 2 (lane % 4) + 0..1),
// acc[i][j][2..3] 8 rows below (the PTX m16n8k16 layout).
constexpr int kRowBlocks = kWarpRows / 16;
constexpr int kColBlocks = kWarpCols / 8;
using WarpAccumulators = float[kRowBlocks][kColBlocks][4];

__device__ void ZeroAccumulators(WarpAccumulators& acc) {
#pragma unroll
  for (int i = 0; i < kRowBlocks; ++i) {
#pragma unroll
    for (int j = 0; j < kColBlocks; ++j) {
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;
    }
  }
}

// Four 8 x 8 b16 matrices from shared memory, lane l giving row l % 8 of
// matrix l / 8; each thread gets (row lane / 4, cols 2 (lane % 4) + 0..1)
// of each, or of its transpose with `kTrans`.
template <bool kTrans>
__device__ void LoadMatrices(unsigned (&r)[4], const __nv_bfloat16* row) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if (kTrans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  }
}

// c += a b for a 16 x 16 bf16 A fragment and a 16 x 8 B fragment (b0: k
// 0..7, b1: k 8..15), fp32 accumulation.
__device__ void Mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// acc += a b over one depth step of the tiles, for the warp's outputs at
// (warp_row, warp_col) of the tile. a is [128][depth] (kAColMajor: [depth][128],
// as the outer GEMM's rows), b [128 n][depth] (kBColMajor) or [depth][128 n].
// Fragment rows at or past `live_rows` hold no output and are skipped.
template <bool kAColMajor, bool kBColMajor>
__device__ void MultiplyBf16Step(const __nv_bfloat16* a_tile, const __nv_bfloat16* b_tile,
                                 int warp_row, int warp_col, int live_rows,
                                 WarpAccumulators& acc) {
  const int lane = threadIdx.x % kWarpSize;
  const int matrix = lane / 8;
  const int line = lane % 8;
#pragma unroll
  for (int k = 0; k < kBf16Depth; k += 16) {
    // b[jj]: n 16 jj.. as two n8 blocks {b0, b1} each: matrices (n 0-7, k
    // 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
    unsigned b[kColBlocks / 2][4];
#pragma unroll
    for (int jj = 0; jj < kColBlocks / 2; ++jj) {
      const int n = warp_col + 16 * jj + matrix / 2 * 8;
      const int kk = k + matrix % 2 * 8;
      if (kBColMajor) {
        LoadMatrices<false>(b[jj], b_tile + (n + line) * kDeepRow + kk);
      } else {
        LoadMatrices<true>(b[jj], b_tile + (kk + line) * kWideRow + n);
      }
    }
#pragma unroll
    for (int i = 0; i < kRowBlocks; ++i) {
      const int row = warp_row + 16 * i;
      if (row >= live_rows) break;  // warp-uniform
      // Matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15).
      unsigned a[4];
      const int m = row + matrix % 2 * 8;
      const int kk = k + matrix / 2 * 8;
      if (kAColMajor) {
        LoadMatrices<true>(a, a_tile + (kk + line) * kWideRow + m);
      } else {
        LoadMatrices<false>(a, a_tile + (m + line) * kDeepRow + kk);
      }
#pragma unroll
      for (int j = 0; j < kColBlocks; ++j) {
        Mma16816(acc[i][j], a, b[j / 2][j % 2 * 2], b[j / 2][j % 2 * 2 + 1]);
      }
    }
  }
}

// Writes the warp's outputs at (row0, col0) of C [rows, ldc], rows <
// row_end and cols < n only.
__device__ void StoreAccumulators(const WarpAccumulators& acc, float* c, int64_t ldc,
                                  int64_t row0, int64_t row_end, int64_t col0, int64_t n) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int i = 0; i < kRowBlocks; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t r = row0 + 16 * i + 8 * half + lane / 4;
      if (r >= row_end) continue;
#pragma unroll
      for (int j = 0; j < kColBlocks; ++j) {
        const int64_t col = col0 + 8 * j + 2 * (lane % 4);
        if (col < n) c[r * ldc + col] = acc[i][j][2 * half];
        if (col + 1 < n) c[r * ldc + col + 1] = acc[i][j][2 * half + 1];
      }
    }
  }
}

// Chunk i of this thread in a depth step: 16 bytes of a [128][depth] tile at
// row c / 4, depth (c % 4) * 8, or of a [depth][128] tile at depth c / 16,
// col (c % 16) * 8, c = threadIdx.x + i kGemmThreads.
__device__ int StepChunk(int i) { return threadIdx.x + i * kGemmThreads; }

// The pipeline over `steps` depth steps: load(stage, step) queues a step's
// copies, multiply(stage) consumes one; kBf16Stages - 1 steps load ahead.
template <typename Load, typename Multiply>
__device__ void RunPipeline(int steps, Load load, Multiply multiply) {
  for (int s = 0; s < kBf16Stages - 1; ++s) {
    if (s < steps) load(s, s);
    CommitAsync();  // empty groups keep the count uniform
  }
  for (int t = 0; t < steps; ++t) {
    WaitAsync<kBf16Stages - 2>();  // step t landed (this thread's copies)
    __syncthreads();               // ... and everyone's; step t - 1's stage free
    const int next = t + kBf16Stages - 1;
    if (next < steps) load(next % kBf16Stages, next);
    CommitAsync();
    multiply(t % kBf16Stages);
  }
  WaitAsync<0>();  // only empty groups remain; nothing may be in flight at exit
}

// C[r, :n] = A[r, :] B_e for each expert e's sorted rows r: A [R, lda] and B
// bf16 with rows padded to 8; B_e [n][ldb] when transposed (a weight applied
// as W a, ldb = padded depth), else [depth][ldb] (ldb = padded n).
struct RowsGemmBf16 {
  const __nv_bfloat16* a = nullptr;
  int64_t lda = 0;
  const __nv_bfloat16* b = nullptr;
  int64_t b_expert_stride = 0;
  int64_t ldb = 0;
  float* c = nullptr;  // [R, n]
  int64_t n = 0;
  int64_t depth = 0;
};

// Grid (row tiles, column tiles), as the fp32 kernel's.
template <bool kBTransposed>
__global__ void __launch_bounds__(kGemmThreads, 2)
    GroupedRowsGemmBf16Kernel(RowsGemmBf16 g, const int* offsets, const int* tile_offsets,
                              int experts) {
  extern __shared__ __align__(128) unsigned char shared[];
  __nv_bfloat16* tiles = reinterpret_cast<__nv_bfloat16*>(shared);  // [stage][a, b]
  const int tile = blockIdx.x;
  if (tile >= tile_offsets[experts]) return;
  const int e = ExpertOfTile(tile, tile_offsets, experts);
  const int row_begin = offsets[e] + (tile - tile_offsets[e]) * kBf16Rows;
  const int row_end = offsets[e + 1];
  const int64_t col_begin = static_cast<int64_t>(blockIdx.y) * kBf16Cols;
  const __nv_bfloat16* b = g.b + e * g.b_expert_stride;
  auto load = [&](int stage, int step) {
    __nv_bfloat16* a_tile = tiles + stage * 2 * kOperandTile;
    __nv_bfloat16* b_tile = a_tile + kOperandTile;
    const int64_t k0 = static_cast<int64_t>(step) * kBf16Depth;
#pragma unroll
    for (int i = 0; i < kStepChunks; ++i) {
      const int c = StepChunk(i);
      const int row = c / kDeepChunks;
      const int64_t deep = k0 + c % kDeepChunks * kBf16Align;
      const int64_t r = row_begin + row;
      const bool a_valid = r < row_end && deep < g.lda;
      CopyAsync16(a_tile + row * kDeepRow + c % kDeepChunks * kBf16Align,
                  a_valid ? g.a + r * g.lda + deep : g.a, a_valid);
      if (kBTransposed) {  // b [n][ldb]: rows along depth
        const int64_t col = col_begin + row;
        const bool valid = col < g.n && deep < g.ldb;
        CopyAsync16(b_tile + row * kDeepRow + c % kDeepChunks * kBf16Align,
                    valid ? b + col * g.ldb + deep : b, valid);
      } else {  // b [depth][ldb]: rows along n
        const int64_t depth = k0 + c / kWideChunks;
        const int64_t col = col_begin + c % kWideChunks * kBf16Align;
        const bool valid = depth < g.depth && col < g.ldb;
        CopyAsync16(b_tile + c / kWideChunks * kWideRow + c % kWideChunks * kBf16Align,
                    valid ? b + depth * g.ldb + col : b, valid);
      }
    }
  };
  const int warp = threadIdx.x / kWarpSize;
  const int warp_row = kWarpRows * (warp / kColWarps);
  const int warp_col = kWarpCols * (warp % kColWarps);
  const int live_rows = row_end - row_begin;
  WarpAccumulators acc;
  ZeroAccumulators(acc);
  const int steps = static_cast<int>((g.lda + kBf16Depth - 1) / kBf16Depth);
  RunPipeline(steps, load, [&](int stage) {
    const __nv_bfloat16* a_tile = tiles + stage * 2 * kOperandTile;
    MultiplyBf16Step<false, kBTransposed>(a_tile, a_tile + kOperandTile, warp_row, warp_col,
                                          live_rows, acc);
  });
  StoreAccumulators(acc, g.c, g.n, row_begin + warp_row, row_end, col_begin + warp_col, g.n);
}

// C_e[m, n] = sum over expert e's sorted rows r of left[r, m] right[r, n]:
// a weight gradient; left [R, ldl] and right [R, ldr] bf16, rows padded to
// 8. Grid (n tiles, m tiles, E); an expert without rows gets zeros.
struct OuterGemmBf16 {
  const __nv_bfloat16* left = nullptr;
  int64_t ldl = 0;
  const __nv_bfloat16* right = nullptr;
  int64_t ldr = 0;
  float* c = nullptr;  // [E, m, n]
  int64_t m = 0;
  int64_t n = 0;
};

__global__ void __launch_bounds__(kGemmThreads, 2)
    GroupedOuterGemmBf16Kernel(OuterGemmBf16 g, const int* offsets) {
  extern __shared__ __align__(128) unsigned char shared[];
  __nv_bfloat16* tiles = reinterpret_cast<__nv_bfloat16*>(shared);  // [stage][left, right]
  const int e = blockIdx.z;
  const int row_begin = offsets[e];
  const int row_end = offsets[e + 1];
  const int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kBf16Rows;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.x) * kBf16Cols;
  // Sorted rows are the depth: both tiles are [depth][128].
  auto load = [&](int stage, int step) {
    __nv_bfloat16* left_tile = tiles + stage * 2 * kOperandTile;
    __nv_bfloat16* right_tile = left_tile + kOperandTile;
#pragma unroll
    for (int i = 0; i < kStepChunks; ++i) {
      const int c = StepChunk(i);
      const int64_t r = row_begin + static_cast<int64_t>(step) * kBf16Depth + c / kWideChunks;
      const int64_t x = c % kWideChunks * kBf16Align;
      const int at = c / kWideChunks * kWideRow + c % kWideChunks * kBf16Align;
      const bool left_valid = r < row_end && m_begin + x < g.ldl;
      CopyAsync16(left_tile + at, left_valid ? g.left + r * g.ldl + m_begin + x : g.left,
                  left_valid);
      const bool right_valid = r < row_end && n_begin + x < g.ldr;
      CopyAsync16(right_tile + at, right_valid ? g.right + r * g.ldr + n_begin + x : g.right,
                  right_valid);
    }
  };
  const int warp = threadIdx.x / kWarpSize;
  const int warp_row = kWarpRows * (warp / kColWarps);
  const int warp_col = kWarpCols * (warp % kColWarps);
  const int live_rows = static_cast<int>(g.m - m_begin < kBf16Rows ? g.m - m_begin : kBf16Rows);
  WarpAccumulators acc;
  ZeroAccumulators(acc);
  const int steps = (row_end - row_begin + kBf16Depth - 1) / kBf16Depth;
  RunPipeline(steps, load, [&](int stage) {
    const __nv_bfloat16* left_tile = tiles + stage * 2 * kOperandTile;
    MultiplyBf16Step<true, false>(left_tile, left_tile + kOperandTile, warp_row, warp_col,
                                  live_rows, acc);
  });
  StoreAccumulators(acc, g.c + e * g.m * g.n, g.n, m_begin + warp_row, g.m, n_begin + warp_col,
                    g.n);
}

// The kernels need more than the default 48 KiB of dynamic shared memory:
// raised once per kernel (and process: one device each), before its first
// launch.
template <auto kKernel>
void AllowBf16Shared() {
  static const cudaError_t status = cudaFuncSetAttribute(
      kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kBf16SharedBytes));
  (void)status;  // a failure surfaces as the launch's error
}

// Row tiles of the rows GEMM in the math `bf16` picks.
int RowTileRows(bool bf16) { return bf16 ? kBf16Rows : kTileRows; }

// The grids of the fp32 GEMMs.
void RunRowsGemm(const MoeExpertsShape& shape, const RowsGemm& g, const ExpertsScratch& s,
                 cudaStream_t stream) {
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  // Each expert's partial tile adds at most one to the full ones.
  const dim3 grid(CeilDiv(rows, kTileRows) + experts, CeilDiv(g.n, kTileCols));
  GroupedRowsGemmKernel<<<grid, kGemmThreads, 0, stream>>>(g, s.offsets, s.tile_offsets, s.order,
                                                           experts, static_cast<int>(shape.slots));
}

void RunOuterGemm(const MoeExpertsShape& shape, const OuterGemm& g, const ExpertsScratch& s,
                  cudaStream_t stream) {
  const dim3 grid(CeilDiv(g.n, kTileCols), CeilDiv(g.m, kTileRows),
                  static_cast<unsigned>(shape.experts));
  GroupedOuterGemmKernel<<<grid, kGemmThreads, 0, stream>>>(g, s.offsets, s.order,
                                                            static_cast<int>(shape.slots));
}

// ... and of the bf16 ones.
void RunRowsGemmBf16(const MoeExpertsShape& shape, const RowsGemmBf16& g, bool b_transposed,
                     const ExpertsScratch& s, cudaStream_t stream) {
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const dim3 grid(CeilDiv(rows, kBf16Rows) + experts, CeilDiv(g.n, kBf16Cols));
  if (b_transposed) {
    AllowBf16Shared<GroupedRowsGemmBf16Kernel<true>>();
    GroupedRowsGemmBf16Kernel<true><<<grid, kGemmThreads, kBf16SharedBytes, stream>>>(
        g, s.offsets, s.tile_offsets, experts);
  } else {
    AllowBf16Shared<GroupedRowsGemmBf16Kernel<false>>();
    GroupedRowsGemmBf16Kernel<false><<<grid, kGemmThreads, kBf16SharedBytes, stream>>>(
        g, s.offsets, s.tile_offsets, experts);
  }
}

void RunOuterGemmBf16(const MoeExpertsShape& shape, const OuterGemmBf16& g,
                      const ExpertsScratch& s, cudaStream_t stream) {
  const dim3 grid(CeilDiv(g.n, kBf16Cols), CeilDiv(g.m, kBf16Rows),
                  static_cast<unsigned>(shape.experts));
  AllowBf16Shared<GroupedOuterGemmBf16Kernel>();
  GroupedOuterGemmBf16Kernel<<<grid, kGemmThreads, kBf16SharedBytes, stream>>>(g, s.offsets);
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

// One grouped product over the routed rows, C[r, :n] = A_r W_e over `depth`,
// in either math: W_e is stored [n][depth] when `w_transposed` (a weight
// applied as W a), else [depth][n]; at bf16 the rounded copies (rows padded
// to PadBf16) stand in for A and W.
struct RowsProduct {
  RowSource a;
  const __nv_bfloat16* a_bf16 = nullptr;
  const float* w = nullptr;
  const __nv_bfloat16* w_bf16 = nullptr;
  bool w_transposed = false;
  float* c = nullptr;
  int64_t n = 0;
  int64_t depth = 0;
};

void RunRowsProduct(const MoeExpertsShape& shape, const RowsProduct& p, const ExpertsScratch& s,
                    cudaStream_t stream) {
  if (shape.bf16) {
    RowsGemmBf16 g;
    g.a = p.a_bf16;
    g.lda = PadBf16(p.depth);
    g.b = p.w_bf16;
    g.ldb = PadBf16(p.w_transposed ? p.depth : p.n);
    g.b_expert_stride = (p.w_transposed ? p.n : p.depth) * g.ldb;
    g.c = p.c;
    g.n = p.n;
    g.depth = p.depth;
    RunRowsGemmBf16(shape, g, p.w_transposed, s, stream);
    return;
  }
  RowsGemm g;
  g.a = p.a;
  g.b = p.w;
  g.b_expert_stride = p.n * p.depth;
  g.b_transposed = p.w_transposed;
  g.c = p.c;
  g.n = p.n;
  g.depth = p.depth;
  RunRowsGemm(shape, g, s, stream);
}

// One weight gradient, C_e[m, n] = sum over expert e's rows r of
// scale_r left_r[m] right_r[n] (scale_r = weights[order[r]], or 1 when
// null); at bf16 the rounded rows stand in, left_bf16 already scaled.
struct OuterProduct {
  RowSource left;
  const __nv_bfloat16* left_bf16 = nullptr;
  RowSource right;
  const __nv_bfloat16* right_bf16 = nullptr;
  const float* weights = nullptr;
  float* c = nullptr;
  int64_t m = 0;
  int64_t n = 0;
};

void RunOuterProduct(const MoeExpertsShape& shape, const OuterProduct& p,
                     const ExpertsScratch& s, cudaStream_t stream) {
  if (shape.bf16) {
    OuterGemmBf16 g;
    g.left = p.left_bf16;
    g.ldl = PadBf16(p.m);
    g.right = p.right_bf16;
    g.ldr = PadBf16(p.n);
    g.c = p.c;
    g.m = p.m;
    g.n = p.n;
    RunOuterGemmBf16(shape, g, s, stream);
    return;
  }
  OuterGemm g;
  g.left = p.left;
  g.right = p.right;
  g.weights = p.weights;
  g.c = p.c;
  g.m = p.m;
  g.n = p.n;
  RunOuterGemm(shape, g, s, stream);
}

// The products of the forward and backward, from the launch's operands and
// scratch (the bf16 copies are read only when shape.bf16).

// [g; u] = gate_up x per routed row.
RowsProduct GateUpProduct(const MoeExpertsShape& shape, const ExpertsScratch& s, const float* x,
                          const float* gate_up) {
  RowsProduct p;
  p.a = RowSource{x, shape.hidden, true};
  p.a_bf16 = s.x_rows;
  p.w = gate_up;
  p.w_bf16 = s.gate_up_bf16;
  p.w_transposed = true;  // gate_up[e] is [2I, H]
  p.c = s.projected;
  p.n = 2 * shape.intermediate;
  p.depth = shape.hidden;
  return p;
}

// hidden_rows = down a per routed row.
RowsProduct DownProduct(const MoeExpertsShape& shape, const ExpertsScratch& s,
                        const float* down) {
  RowsProduct p;
  p.a = RowSource{s.activation, shape.intermediate, false};
  p.a_bf16 = s.activation_bf16;
  p.w = down;
  p.w_bf16 = s.down_bf16;
  p.w_transposed = true;  // down[e] is [H, I]
  p.c = s.hidden_rows;
  p.n = shape.hidden;
  p.depth = shape.intermediate;
  return p;
}

// activation_grad = down^T dy per routed row (before the gate weight).
RowsProduct BackDownProduct(const MoeExpertsShape& shape, const ExpertsScratch& s,
                            const float* down, const float* y_grad) {
  RowsProduct p;
  p.a = RowSource{y_grad, shape.hidden, true};
  p.a_bf16 = s.y_grad_rows;
  p.w = down;
  p.w_bf16 = s.down_bf16;
  p.w_transposed = false;  // down[e] is [H, I]: depth H, n I
  p.c = s.activation_grad;
  p.n = shape.intermediate;
  p.depth = shape.hidden;
  return p;
}

// hidden_rows = gate_up[e]^T [dg; du] per routed row.
RowsProduct BackGateUpProduct(const MoeExpertsShape& shape, const ExpertsScratch& s,
                              const float* gate_up) {
  RowsProduct p;
  p.a = RowSource{s.projected, 2 * shape.intermediate, false};
  p.a_bf16 = s.projected_bf16;
  p.w = gate_up;
  p.w_bf16 = s.gate_up_bf16;
  p.w_transposed = false;  // gate_up[e] is [2I, H]: depth 2I, n H
  p.c = s.hidden_rows;
  p.n = shape.hidden;
  p.depth = 2 * shape.intermediate;
  return p;
}

// down_grad[e] = sum over e's rows of (w_r dy_t) a_r^T.
OuterProduct DownGradProduct(const MoeExpertsShape& shape, const ExpertsScratch& s,
                             const float* weights, const float* y_grad, float* down_grad) {
  OuterProduct p;
  p.left = RowSource{y_grad, shape.hidden, true};
  p.left_bf16 = s.weighted_y_grad_rows;
  p.right = RowSource{s.activation, shape.intermediate, false};
  p.right_bf16 = s.activation_bf16;
  p.weights = weights;
  p.c = down_grad;
  p.m = shape.hidden;
  p.n = shape.intermediate;
  return p;
}

// gate_up_grad[e] = sum over e's rows of [dg; du]_r x_t^T.
OuterProduct GateUpGradProduct(const MoeExpertsShape& shape, const ExpertsScratch& s,
                               const float* x, float* gate_up_grad) {
  OuterProduct p;
  p.left = RowSource{s.projected, 2 * shape.intermediate, false};
  p.left_bf16 = s.projected_bf16;
  p.right = RowSource{x, shape.hidden, true};
  p.right_bf16 = s.x_rows;
  p.c = gate_up_grad;
  p.m = 2 * shape.intermediate;
  p.n = shape.hidden;
  return p;
}

// Routes the rows and projects and activates them: the forward's first half,
// which the backward recomputes. At bf16 it also rounds x's routed rows and
// both weights, and the activation.
void RouteAndActivate(const MoeExpertsShape& shape, const ExpertsScratch& s, const float* x,
                      const void* ids, bool ids_are_i64, const float* gate_up,
                      const float* down, const float* kept_projected, unsigned* error_flags,
                      cudaStream_t stream) {
  // bf16 weights are read where they are (s points at them); f32 ones are
  // rounded into s's copies below.
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const int slots = static_cast<int>(shape.slots);
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
  const int64_t hidden = shape.hidden;
  const int64_t inter = shape.intermediate;
  const int* routed = s.offsets + experts;  // rows past it are not read
  if (shape.bf16) {
    ToBf16Rows(x, hidden, s.order, slots, nullptr, routed, rows, hidden, s.x_rows, stream);
    if (!shape.weights_bf16) {
      ToBf16Rows(gate_up, hidden, nullptr, 0, nullptr, nullptr, experts * 2 * inter, hidden,
                 s.gate_up_bf16, stream);
      ToBf16Rows(down, inter, nullptr, 0, nullptr, nullptr, experts * hidden, inter,
                 s.down_bf16, stream);
    }
  }
  if (inter == 0) return;
  if (kept_projected) {  // the forward's, in the same routed order
    cudaMemcpyAsync(s.projected, kept_projected, sizeof(float) * rows * 2 * inter,
                    cudaMemcpyDeviceToDevice, stream);
  } else {
    RunRowsProduct(shape, GateUpProduct(shape, s, x, gate_up), s, stream);
  }
  SwigluKernel<<<BlocksFor(rows * inter, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
      s.projected, rows, inter, s.offsets, experts, s.activation);
  if (shape.bf16) {
    ToBf16Rows(s.activation, inter, nullptr, 0, nullptr, routed, rows, inter, s.activation_bf16,
               stream);
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

size_t MoeExpertsScratchBytes(const MoeExpertsShape& shape) {
  ExpertsScratch unused;
  return LayOutScratch(shape, /*backward=*/true, nullptr, &unused);
}

// The weights as the products read them: bf16 ones through `s`, f32 ones
// directly (the f32 GEMMs) and through s's rounded copies.
struct ExpertWeights {
  const float* gate_up = nullptr;
  const float* down = nullptr;
};
ExpertWeights PointWeights(const MoeExpertsShape& shape, const void* gate_up, const void* down,
                           ExpertsScratch& s) {
  if (!shape.weights_bf16) {
    return {static_cast<const float*>(gate_up), static_cast<const float*>(down)};
  }
  s.gate_up_bf16 = static_cast<__nv_bfloat16*>(const_cast<void*>(gate_up));
  s.down_bf16 = static_cast<__nv_bfloat16*>(const_cast<void*>(down));
  return {};
}

void LaunchMoeExperts(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                      bool ids_are_i64, const float* weights, const void* gate_up_weights,
                      const void* down_weights, float* y, float* projected, void* scratch,
                      unsigned* error_flags, cudaStream_t stream) {
  ExpertsScratch s;
  LayOutScratch(shape, false, static_cast<char*>(scratch), &s);
  if (projected) s.projected = projected;  // the GEMM writes the kept rows in place
  const ExpertWeights w = PointWeights(shape, gate_up_weights, down_weights, s);
  const float* gate_up = w.gate_up;
  const float* down = w.down;
  RouteAndActivate(shape, s, x, expert_ids, ids_are_i64, gate_up, down, nullptr, error_flags,
                   stream);
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  if (rows > 0 && shape.hidden > 0) {
    RunRowsProduct(shape, DownProduct(shape, s, down), s, stream);
  }
  const int64_t outputs = shape.tokens * shape.hidden;
  if (outputs > 0) {
    CombineKernel<<<BlocksFor(outputs, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
        s.hidden_rows, s.position, weights, shape.tokens, shape.hidden, shape.slots, y);
  }
}

void LaunchMoeExpertsGrad(const MoeExpertsShape& shape, const float* x, const void* expert_ids,
                          bool ids_are_i64, const float* weights, const void* gate_up_weights,
                          const void* down_weights, const float* y_grad,
                          const float* projected, float* x_grad,
                          float* weights_grad, float* gate_up_grad, float* down_grad,
                          void* scratch, unsigned* error_flags, cudaStream_t stream) {
  ExpertsScratch s;
  LayOutScratch(shape, true, static_cast<char*>(scratch), &s);
  const ExpertWeights w = PointWeights(shape, gate_up_weights, down_weights, s);
  const float* gate_up = w.gate_up;
  const float* down = w.down;
  RouteAndActivate(shape, s, x, expert_ids, ids_are_i64, gate_up, down, projected, error_flags,
                   stream);
  const int rows = static_cast<int>(shape.tokens * shape.slots);
  const int experts = static_cast<int>(shape.experts);
  const int slots = static_cast<int>(shape.slots);
  const int64_t hidden = shape.hidden;
  const int64_t inter = shape.intermediate;
  const int* routed = s.offsets + experts;
  if (rows > 0) {
    if (shape.bf16) {
      ToBf16Rows(y_grad, hidden, s.order, slots, nullptr, routed, rows, hidden, s.y_grad_rows,
                 stream);
      ToBf16Rows(y_grad, hidden, s.order, slots, weights, routed, rows, hidden,
                 s.weighted_y_grad_rows, stream);
    }
    if (inter > 0) {
      RunRowsProduct(shape, BackDownProduct(shape, s, down, y_grad), s, stream);
    }
    constexpr int kWarpsPerBlock = kElementwiseThreads / kWarpSize;
    SwigluGradKernel<<<BlocksFor(rows, kWarpsPerBlock), kElementwiseThreads, 0, stream>>>(
        s.activation_grad, s.activation, weights, s.position, rows, inter, s.projected,
        weights_grad);
    if (shape.bf16) {
      ToBf16Rows(s.projected, 2 * inter, nullptr, 0, nullptr, routed, rows, 2 * inter,
                 s.projected_bf16, stream);
    }
  }
  if (experts > 0 && hidden > 0 && inter > 0) {
    RunOuterProduct(shape, DownGradProduct(shape, s, weights, y_grad, down_grad), s, stream);
    RunOuterProduct(shape, GateUpGradProduct(shape, s, x, gate_up_grad), s, stream);
  }
  if (rows > 0 && hidden > 0) {
    RunRowsProduct(shape, BackGateUpProduct(shape, s, gate_up), s, stream);
  }
  const int64_t outputs = shape.tokens * hidden;
  if (outputs > 0) {
    CombineKernel<<<BlocksFor(outputs, kElementwiseThreads), kElementwiseThreads, 0, stream>>>(
        s.hidden_rows, s.position, nullptr, shape.tokens, hidden, shape.slots, x_grad);
  }
}

}  // namespace veomni::runtime::cuda
