// The collectives a rank runs over groups of the mesh, one interface for every
// backend (ranks as threads here; NCCL later). The executor calls them with
// views into its arena, so collectives never allocate their operands.

#ifndef VEOMNI_RUNTIME_COMM_COMMUNICATOR_H
#define VEOMNI_RUNTIME_COMM_COMMUNICATOR_H

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/comm/Mesh.h"

namespace veomni::runtime {

// One per rank; thread-compatible, used by that rank's thread only.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual const Mesh& mesh() const = 0;
  // Whether tensors are GPU memory (NCCL) rather than host memory.
  virtual bool operates_on_device() const { return false; }

  // All collectives are over mesh().Group(rank(), axes), in group order;
  // tensors are contiguous row-major; dims may be negative (counted from the
  // end). Every member must pass identical input shapes, dtypes and dims.
  //
  // all_gather: out = concat over members of `in` along `dim`
  // (out.shape[dim] = G * in.shape[dim]).
  virtual absl::Status AllGather(const TensorView& in, const TensorView& out, uint32_t axes,
                                 int dim) = 0;
  // reduce_scatter: out = chunk g (g = this rank's group index) along `dim` of
  // the elementwise sum over members (in.shape[dim] = G * out.shape[dim]). f32 only.
  virtual absl::Status ReduceScatter(const TensorView& in, const TensorView& out, uint32_t axes,
                                     int dim) = 0;
  // all_reduce: out = elementwise sum over members. f32 only. out may alias in.
  virtual absl::Status AllReduce(const TensorView& in, const TensorView& out, uint32_t axes) = 0;
  // all_to_all: `in` is split into G equal chunks along split_dim; member g
  // receives chunk g of every member j and concatenates them in order j along
  // concat_dim. (Ulysses: in [B, S/sp, H, D], split_dim 2, concat_dim 1 ->
  // out [B, S, H/sp, D].)
  virtual absl::Status AllToAll(const TensorView& in, const TensorView& out, uint32_t axes,
                                int split_dim, int concat_dim) = 0;
  // all_to_all_v: rows (dim 0) with counts that vary by member, as expert
  // dispatch needs. This rank sends send_rows[g] consecutive rows of `in` to
  // member g, in group order from row 0; it receives recv_rows[j] rows from
  // member j into `out`, in order j from row 0. Rows past the counted ones
  // are untouched, so buffers may be sized for the worst case. recv_rows[j]
  // must equal member j's send_rows[this member] (exchange the counts first,
  // e.g. with AllToAll); a mismatch is InvalidArgument on every member.
  virtual absl::Status AllToAllV(const TensorView& in, absl::Span<const int64_t> send_rows,
                                 const TensorView& out, absl::Span<const int64_t> recv_rows,
                                 uint32_t axes) = 0;
  // A GPU communicator runs each collective on a stream of its own, after
  // the work queued on the kernels' stream before it. By default the
  // kernels' stream then waits for the collective at once; with deferred
  // joins it waits only at the next Join(), so kernels that touch neither
  // the collective's input nor its output overlap it. Host communicators
  // finish each collective before returning and ignore both.
  virtual void DeferJoins(bool /*defer*/) {}
  virtual absl::Status Join() { return absl::OkStatus(); }
  // With deferred joins, a finer wait: Ticket() marks the collectives issued
  // so far, and JoinThrough(ticket) makes the kernels' stream wait for those
  // only, so collectives issued after the mark keep running. A ticket is
  // good until the next Join().
  virtual absl::StatusOr<int64_t> Ticket() { return 0; }
  virtual absl::Status JoinThrough(int64_t /*ticket*/) { return absl::OkStatus(); }
  // Marks the whole world failed: every rank blocked in or entering a
  // collective returns Aborted naming the failed rank and `status`'s message.
  // Idempotent: the first failure is the one reported.
  virtual void Abort(const absl::Status& status) = 0;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_COMMUNICATOR_H
