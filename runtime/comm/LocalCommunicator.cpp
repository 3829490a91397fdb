#include "runtime/comm/LocalCommunicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Status.h"

namespace veomni::runtime {
namespace comm_internal {

enum class Collective : uint8_t { kAllGather, kReduceScatter, kAllReduce, kAllToAll, kAllToAllV };

// What one member passed to the collective in flight. Copied, not pointed to:
// a member that leaves early (an error) must not leave dangling views behind.
struct Contribution {
  Collective op = Collective::kAllGather;
  int dim = -1;         // all_gather, reduce_scatter; split_dim of all_to_all
  int concat_dim = -1;  // all_to_all
  DType dtype = DType::kF32;
  std::vector<int64_t> in_shape;
  const std::byte* in = nullptr;
  int64_t in_bytes = 0;
  const std::byte* out = nullptr;  // only for overlap checks
  int64_t out_bytes = 0;
  // all_to_all_v: rows sent to / received from each member, in group order.
  std::vector<int64_t> send_rows, recv_rows;
  absl::Status operand_error;  // this member's own operands against the op's rule
};

// The members of one group of one axes mask, and their rendezvous.
struct GroupState {
  explicit GroupState(std::vector<int> member_ranks)
      : ranks(std::move(member_ranks)),
        arrived_at(ranks.size(), false),
        contributions(ranks.size()) {}
  int size() const { return static_cast<int>(ranks.size()); }

  const std::vector<int> ranks;
  std::mutex mu;
  std::condition_variable cv;
  // A generation-counted barrier: `generation` counts completed barriers.
  uint64_t generation = 0;
  int arrived = 0;
  std::vector<bool> arrived_at;  // by group index, for the barrier in progress
  // Set when a member gave up at barrier `timed_out_generation`; the world is
  // failed then, so the group is never used again.
  bool timed_out = false;
  uint64_t timed_out_generation = 0;
  // Written by member i only while it arrives at the first barrier; read by
  // all between the two barriers.
  std::vector<Contribution> contributions;
};

struct LocalWorldState {
  LocalWorldState(Mesh world_mesh, absl::Duration wait_timeout);

  // The group of `rank` over `axes`, or null when that group is `rank` alone.
  GroupState* GroupOf(uint32_t axes, int rank) const {
    return groups[axes * mesh.size() + mesh.Group(rank, axes).front()].get();
  }
  // Records the first failure; later ones are ignored.
  void Fail(int rank, const absl::Status& status);
  // Wakes every waiter of every group so that it sees the failure.
  void WakeAll();
  bool failed() const { return has_failed.load(std::memory_order_acquire); }

  const Mesh mesh;
  const absl::Duration timeout;
  absl::Status mesh_error;
  std::vector<std::unique_ptr<GroupState>> groups;  // [axes * size + first rank]

  std::mutex claim_mu;
  std::vector<bool> claimed;

  std::mutex failure_mu;
  std::atomic<bool> has_failed{false};
  absl::Status failure;  // written once, before has_failed is set
};

LocalWorldState::LocalWorldState(Mesh world_mesh, absl::Duration wait_timeout)
    : mesh(world_mesh), timeout(wait_timeout) {
  if (mesh.dp < 1 || mesh.fsdp < 1 || mesh.sp < 1 || mesh.ep < 1) {
    mesh_error = absl::InvalidArgumentError(
        absl::StrCat("local world: mesh dp=", mesh.dp, ", fsdp=", mesh.fsdp, ", sp=", mesh.sp,
                     ", ep=", mesh.ep, " has a degree below 1"));
    return;
  }
  if ((mesh.fsdp * mesh.sp) % mesh.ep != 0) {
    mesh_error = absl::InvalidArgumentError(
        absl::StrCat("local world: ep=", mesh.ep, " does not divide fsdp*sp=",
                     mesh.fsdp * mesh.sp));
    return;
  }
  const int size = mesh.size();
  claimed.assign(size, false);
  groups.resize((kAllMeshAxes + 1) * size);
  for (uint32_t axes = 1; axes <= kAllMeshAxes; ++axes) {
    if (!Mesh::ValidAxes(axes)) continue;
    for (int rank = 0; rank < size; ++rank) {
      std::vector<int> members = mesh.Group(rank, axes);
      if (members.size() > 1 && members.front() == rank) {
        groups[axes * size + rank] = std::make_unique<GroupState>(std::move(members));
      }
    }
  }
}

void LocalWorldState::Fail(int rank, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(failure_mu);
  if (has_failed.load(std::memory_order_relaxed)) return;
  failure =
      absl::AbortedError(status.ok() ? absl::StrCat("rank ", rank, " aborted")
                                     : absl::StrCat("rank ", rank, " failed: ", status.message()));
  has_failed.store(true, std::memory_order_release);
}

void LocalWorldState::WakeAll() {
  for (const std::unique_ptr<GroupState>& group : groups) {
    if (group == nullptr) continue;
    // Notifying under the lock: a waiter checks the failure under it too.
    std::lock_guard<std::mutex> lock(group->mu);
    group->cv.notify_all();
  }
}

}  // namespace comm_internal

namespace {

using comm_internal::Collective;
using comm_internal::Contribution;
using comm_internal::GroupState;
using comm_internal::LocalWorldState;
using Clock = std::chrono::steady_clock;

absl::string_view CollectiveName(Collective op) {
  switch (op) {
    case Collective::kAllGather: return "all_gather";
    case Collective::kReduceScatter: return "reduce_scatter";
    case Collective::kAllReduce: return "all_reduce";
    case Collective::kAllToAll: return "all_to_all";
    case Collective::kAllToAllV: return "all_to_all_v";
  }
  return "unknown collective";
}

// "all_gather over (fsdp)": the prefix of every message a collective returns.
std::string Label(Collective op, uint32_t axes) {
  return absl::StrCat(CollectiveName(op), " over ", FormatAxes(axes));
}

std::string FormatRanks(absl::Span<const int> ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

// `dim` in [-rank, rank) made non-negative, or -1.
int NormalizeDim(int dim, size_t rank) {
  const int r = static_cast<int>(rank);
  if (dim < -r || dim >= r) return -1;
  return dim < 0 ? dim + r : dim;
}

// Byte strides of a contiguous tensor of `shape`.
std::vector<int64_t> ByteStrides(absl::Span<const int64_t> shape, int64_t element_bytes) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = element_bytes;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

// `who()` + `role` names the operand ("all_gather over (fsdp): rank 2" "'s input").
template <typename Who>
absl::Status CheckView(const Who& who, absl::string_view role, const TensorView& view) {
  if (DTypeBytes(view.dtype) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who(), role, " has an unknown dtype (", static_cast<int>(view.dtype), ")"));
  }
  for (int64_t dim : view.shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(who(), role, " has a negative dimension: ", FormatShape(view.shape)));
    }
  }
  if (view.data == nullptr && view.NumElements() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who(), role, " has no data for ", view.NumElements(), " elements"));
  }
  return absl::OkStatus();
}

// Checks one member's operands against the op's rule for a group of
// `group_size`; on success normalizes the dims in `c`. Messages name the rank.
absl::Status CheckOperands(uint32_t axes, int rank, int group_size, const TensorView& in,
                           const TensorView& out, Contribution& c) {
  // Built only for a message: the success path allocates nothing here.
  auto who = [&] { return absl::StrCat(Label(c.op, axes), ": rank ", rank); };
  VEOMNI_RETURN_IF_ERROR(CheckView(who, "'s input", in));
  VEOMNI_RETURN_IF_ERROR(CheckView(who, "'s output", out));
  if (in.dtype != out.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(who(), " passes input ", DTypeName(in.dtype),
                                                   " and output ", DTypeName(out.dtype)));
  }
  const bool reduces = c.op == Collective::kReduceScatter || c.op == Collective::kAllReduce;
  if (reduces && in.dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat(who(), " passes ", DTypeName(in.dtype), "; only f32 is reduced"));
  }

  if (c.op == Collective::kAllToAllV) {
    // Rows are dim 0; both sides share the row shape, and the counts must
    // fit the buffers (sized for the worst case, as dropless dispatch needs).
    if (in.shape.empty() || out.shape.empty() ||
        !std::equal(in.shape.begin() + 1, in.shape.end(), out.shape.begin() + 1,
                    out.shape.end())) {
      return absl::InvalidArgumentError(absl::StrCat(
          who(), " passes input ", FormatShape(in.shape), " and output ", FormatShape(out.shape),
          "; both need rows (dim 0) of one shape"));
    }
    for (auto [counts, name, rows] : {std::tuple(&c.send_rows, "send", in.shape[0]),
                                      std::tuple(&c.recv_rows, "receive", out.shape[0])}) {
      if (static_cast<int>(counts->size()) != group_size) {
        return absl::InvalidArgumentError(absl::StrCat(who(), " passes ", counts->size(), " ",
                                                       name, " counts for ", group_size,
                                                       " members"));
      }
      int64_t total = 0;
      for (int64_t count : *counts) {
        if (count < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(who(), " passes a negative ", name, " count ", count));
        }
        total += count;
      }
      if (total > rows) {
        return absl::InvalidArgumentError(absl::StrCat(who(), "'s ", name, " counts total ", total,
                                                       " rows; its buffer has ", rows));
      }
    }
    return absl::OkStatus();
  }

  const size_t rank_of_in = in.shape.size();
  auto normalize = [&](int& dim, absl::string_view name) -> absl::Status {
    const int normalized = NormalizeDim(dim, rank_of_in);
    if (normalized < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          who(), " passes ", name, " ", dim, " for an input of shape ", FormatShape(in.shape)));
    }
    dim = normalized;
    return absl::OkStatus();
  };
  auto divisible = [&](int dim) -> absl::Status {
    if (in.shape[dim] % group_size == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(who(), "'s input dim ", dim, " (", in.shape[dim],
                                                   ") is not divisible by the ", group_size,
                                                   " members"));
  };

  std::vector<int64_t> expected = in.shape;
  switch (c.op) {
    case Collective::kAllGather:
      VEOMNI_RETURN_IF_ERROR(normalize(c.dim, "dim"));
      expected[c.dim] *= group_size;
      break;
    case Collective::kReduceScatter:
      VEOMNI_RETURN_IF_ERROR(normalize(c.dim, "dim"));
      VEOMNI_RETURN_IF_ERROR(divisible(c.dim));
      expected[c.dim] /= group_size;
      break;
    case Collective::kAllReduce: break;
    case Collective::kAllToAllV: break;  // checked above
    case Collective::kAllToAll:
      VEOMNI_RETURN_IF_ERROR(normalize(c.dim, "split_dim"));
      VEOMNI_RETURN_IF_ERROR(normalize(c.concat_dim, "concat_dim"));
      VEOMNI_RETURN_IF_ERROR(divisible(c.dim));
      expected[c.dim] /= group_size;
      expected[c.concat_dim] *= group_size;
      break;
  }
  if (out.shape == expected) return absl::OkStatus();
  std::string rule;
  switch (c.op) {
    case Collective::kAllGather:
      rule = absl::StrCat("gathered from ", group_size, " members along dim ", c.dim);
      break;
    case Collective::kReduceScatter:
      rule = absl::StrCat("scattered over ", group_size, " members along dim ", c.dim);
      break;
    case Collective::kAllReduce: rule = "reduced elementwise"; break;
    case Collective::kAllToAll:
      rule = absl::StrCat("split along dim ", c.dim, " and concatenated along dim ", c.concat_dim,
                          " over ", group_size, " members");
      break;
    case Collective::kAllToAllV: break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(who(), "'s output has shape ", FormatShape(out.shape), ", expected ",
                   FormatShape(expected), " (input ", FormatShape(in.shape), " ", rule, ")"));
}

// The same verdict on every member: the first member's operand error in group
// order, else the first member that disagrees with member 0.
absl::Status CheckAgreement(Collective op, uint32_t axes, absl::Span<const Contribution> members,
                            absl::Span<const int> ranks) {
  auto label = [&] { return Label(op, axes); };
  for (const Contribution& member : members) {
    if (!member.operand_error.ok()) return member.operand_error;
  }
  const Contribution& first = members[0];
  for (size_t i = 1; i < members.size(); ++i) {
    const Contribution& other = members[i];
    if (other.op != first.op) {
      return absl::InvalidArgumentError(
          absl::StrCat(label(), ": rank ", ranks[i], " called ", CollectiveName(other.op),
                       " while rank ", ranks[0], " called ", CollectiveName(first.op)));
    }
    if (other.dim != first.dim || other.concat_dim != first.concat_dim) {
      auto dims = [](const Contribution& c) {
        return c.op == Collective::kAllToAll
                   ? absl::StrCat("split_dim ", c.dim, ", concat_dim ", c.concat_dim)
                   : absl::StrCat("dim ", c.dim);
      };
      return absl::InvalidArgumentError(absl::StrCat(label(), ": rank ", ranks[i], " passes ",
                                                     dims(other), ", rank ", ranks[0], " passes ",
                                                     dims(first)));
    }
    if (other.op == Collective::kAllToAllV) continue;  // checked below
    if (other.dtype != first.dtype || other.in_shape != first.in_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          label(), ": rank ", ranks[i], " passes input ", DTypeName(other.dtype), " ",
          FormatShape(other.in_shape), ", rank ", ranks[0], " passes ", DTypeName(first.dtype), " ",
          FormatShape(first.in_shape), "; members must pass identical shapes"));
    }
  }
  return absl::OkStatus();
}

// all_to_all_v: one dtype and row shape, and what member j sends to member
// g is what g expects from j.
absl::Status CheckRowExchange(uint32_t axes, absl::Span<const Contribution> members,
                              absl::Span<const int> ranks) {
  const Contribution& first = members[0];
  const std::vector<int64_t> row(first.in_shape.begin() + 1, first.in_shape.end());
  for (size_t i = 0; i < members.size(); ++i) {
    const Contribution& other = members[i];
    const std::vector<int64_t> other_row(other.in_shape.begin() + 1, other.in_shape.end());
    if (other.dtype != first.dtype || other_row != row) {
      return absl::InvalidArgumentError(absl::StrCat(
          Label(Collective::kAllToAllV, axes), ": rank ", ranks[i], " passes rows of ",
          DTypeName(other.dtype), " ", FormatShape(other_row), ", rank ", ranks[0], " of ",
          DTypeName(first.dtype), " ", FormatShape(row), "; members must pass one row shape"));
    }
    for (size_t g = 0; g < members.size(); ++g) {
      if (members[g].recv_rows[i] != other.send_rows[g]) {
        return absl::InvalidArgumentError(absl::StrCat(
            Label(Collective::kAllToAllV, axes), ": rank ", ranks[i], " sends ",
            other.send_rows[g], " rows to rank ", ranks[g], ", which expects ",
            members[g].recv_rows[i]));
      }
    }
  }
  return absl::OkStatus();
}

bool Overlap(const std::byte* a, int64_t a_bytes, const std::byte* b, int64_t b_bytes) {
  return a_bytes > 0 && b_bytes > 0 && a < b + b_bytes && b < a + a_bytes;
}

// Copies runs of `run_bytes` at every index of `shape`, each side walking its
// own byte strides.
void CopyRuns(const std::byte* src, absl::Span<const int64_t> src_strides, std::byte* dst,
              absl::Span<const int64_t> dst_strides, absl::Span<const int64_t> shape,
              int64_t run_bytes) {
  if (run_bytes == 0) return;
  for (int64_t dim : shape) {
    if (dim == 0) return;
  }
  std::vector<int64_t> index(shape.size(), 0);
  int64_t src_offset = 0, dst_offset = 0;
  while (true) {
    std::memcpy(dst + dst_offset, src + src_offset, run_bytes);
    size_t d = shape.size();
    while (d > 0) {
      --d;
      src_offset += src_strides[d];
      dst_offset += dst_strides[d];
      if (++index[d] < shape[d]) break;
      src_offset -= shape[d] * src_strides[d];
      dst_offset -= shape[d] * dst_strides[d];
      index[d] = 0;
      if (d == 0) return;
    }
    if (shape.empty()) return;
  }
}

// dst[k] = sum over members j, in order, of member j's input[offset + k].
void SumInOrder(absl::Span<const Contribution> members, int64_t offset, int64_t count, float* dst) {
  const float* first = reinterpret_cast<const float*>(members[0].in) + offset;
  std::copy(first, first + count, dst);
  for (size_t j = 1; j < members.size(); ++j) {
    const float* src = reinterpret_cast<const float*>(members[j].in) + offset;
    for (int64_t k = 0; k < count; ++k) dst[k] += src[k];
  }
}

// Member g's output of the collective, from the members' (validated) inputs.
void Compute(absl::Span<const Contribution> members, int g, std::byte* dst) {
  const Contribution& first = members[0];
  const int group_size = static_cast<int>(members.size());
  const std::vector<int64_t>& in_shape = first.in_shape;
  const int64_t element_bytes = DTypeBytes(first.dtype);
  switch (first.op) {
    case Collective::kAllGather: {
      // Member j's input is block j along dim of every outer row.
      const int dim = first.dim;
      std::vector<int64_t> out_shape = in_shape;
      out_shape[dim] *= group_size;
      const std::vector<int64_t> in_strides = ByteStrides(in_shape, element_bytes);
      const std::vector<int64_t> out_strides = ByteStrides(out_shape, element_bytes);
      const absl::Span<const int64_t> outer = absl::MakeConstSpan(in_shape).first(dim);
      for (int j = 0; j < group_size; ++j) {
        CopyRuns(members[j].in, absl::MakeConstSpan(in_strides).first(dim),
                 dst + j * in_shape[dim] * out_strides[dim],
                 absl::MakeConstSpan(out_strides).first(dim), outer,
                 in_shape[dim] * in_strides[dim]);
      }
      return;
    }
    case Collective::kReduceScatter: {
      const int dim = first.dim;
      int64_t outer = 1;
      for (int d = 0; d < dim; ++d) outer *= in_shape[d];
      int64_t run = in_shape[dim] / group_size;  // elements of one chunk per outer row
      for (size_t d = dim + 1; d < in_shape.size(); ++d) run *= in_shape[d];
      float* out = reinterpret_cast<float*>(dst);
      for (int64_t o = 0; o < outer; ++o) {
        SumInOrder(members, (o * group_size + g) * run, run, out + o * run);
      }
      return;
    }
    case Collective::kAllReduce: {
      SumInOrder(members, 0, first.in_bytes / 4, reinterpret_cast<float*>(dst));
      return;
    }
    case Collective::kAllToAllV: {
      // Member j's rows for g follow its rows for members before g; they
      // land after the rows from members before j.
      int64_t row_bytes = element_bytes;
      for (size_t d = 1; d < in_shape.size(); ++d) row_bytes *= in_shape[d];
      int64_t written = 0;
      for (int j = 0; j < group_size; ++j) {
        int64_t skipped = 0;
        for (int h = 0; h < g; ++h) skipped += members[j].send_rows[h];
        const int64_t bytes = members[j].send_rows[g] * row_bytes;
        if (bytes > 0) std::memcpy(dst + written, members[j].in + skipped * row_bytes, bytes);
        written += bytes;
      }
      return;
    }
    case Collective::kAllToAll: {
      // Chunk g of member j's input is piece j of the output. Past the outer
      // of the two dims both sides are contiguous, so copy whole runs there.
      const int split = first.dim, concat = first.concat_dim;
      std::vector<int64_t> piece = in_shape;
      piece[split] /= group_size;
      std::vector<int64_t> out_shape = piece;
      out_shape[concat] *= group_size;
      const std::vector<int64_t> in_strides = ByteStrides(in_shape, element_bytes);
      const std::vector<int64_t> out_strides = ByteStrides(out_shape, element_bytes);
      const size_t inner = std::max(split, concat);
      const int64_t run_bytes = piece[inner] * in_strides[inner];
      for (int j = 0; j < group_size; ++j) {
        CopyRuns(members[j].in + g * piece[split] * in_strides[split],
                 absl::MakeConstSpan(in_strides).first(inner),
                 dst + j * piece[concat] * out_strides[concat],
                 absl::MakeConstSpan(out_strides).first(inner),
                 absl::MakeConstSpan(piece).first(inner), run_bytes);
      }
      return;
    }
  }
}

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalWorldState> world, int rank, absl::Status setup_error,
                    bool claimed)
      : world_(std::move(world)),
        rank_(rank),
        setup_error_(std::move(setup_error)),
        claimed_(claimed) {
    if (!setup_error_.ok()) return;
    for (uint32_t axes = 0; axes <= kAllMeshAxes; ++axes) {
      Membership& membership = memberships_[axes];
      membership.group = world_->GroupOf(axes, rank_);
      if (membership.group == nullptr) continue;
      const std::vector<int>& ranks = membership.group->ranks;
      membership.index =
          static_cast<int>(std::find(ranks.begin(), ranks.end(), rank_) - ranks.begin());
    }
  }
  ~LocalCommunicator() override {
    if (!claimed_) return;
    std::lock_guard<std::mutex> lock(world_->claim_mu);
    world_->claimed[rank_] = false;
  }

  int rank() const override { return rank_; }
  const Mesh& mesh() const override { return world_->mesh; }

  absl::Status AllGather(const TensorView& in, const TensorView& out, uint32_t axes,
                         int dim) override {
    return Run(Collective::kAllGather, in, out, axes, dim, -1);
  }
  absl::Status ReduceScatter(const TensorView& in, const TensorView& out, uint32_t axes,
                             int dim) override {
    return Run(Collective::kReduceScatter, in, out, axes, dim, -1);
  }
  absl::Status AllReduce(const TensorView& in, const TensorView& out, uint32_t axes) override {
    return Run(Collective::kAllReduce, in, out, axes, -1, -1);
  }
  absl::Status AllToAll(const TensorView& in, const TensorView& out, uint32_t axes, int split_dim,
                        int concat_dim) override {
    return Run(Collective::kAllToAll, in, out, axes, split_dim, concat_dim);
  }
  absl::Status AllToAllV(const TensorView& in, absl::Span<const int64_t> send_rows,
                         const TensorView& out, absl::Span<const int64_t> recv_rows,
                         uint32_t axes) override {
    return Run(Collective::kAllToAllV, in, out, axes, -1, -1, send_rows, recv_rows);
  }

  void Abort(const absl::Status& status) override {
    world_->Fail(rank_, status);
    world_->WakeAll();
  }

 private:
  struct Membership {
    GroupState* group = nullptr;  // null when the group is this rank alone
    int index = 0;
  };

  absl::Status Run(Collective op, const TensorView& in, const TensorView& out, uint32_t axes,
                   int dim, int concat_dim, absl::Span<const int64_t> send_rows = {},
                   absl::Span<const int64_t> recv_rows = {});
  // The first barrier: publishes `mine`, then waits for the whole group.
  absl::Status ArriveWithOperands(GroupState& group, int index, Contribution mine, Collective op,
                                  uint32_t axes);
  // The second barrier. Every member that passed the first one gets here after
  // a bounded copy or sum, so this waits without a deadline, and does not
  // return early on abort: the others may still be reading this rank's input.
  void ArriveAfterReading(GroupState& group, int index);
  absl::Status Aborted(Collective op, uint32_t axes) const {
    return absl::AbortedError(absl::StrCat(Label(op, axes), ": ", world_->failure.message()));
  }

  std::shared_ptr<LocalWorldState> world_;
  const int rank_;
  const absl::Status setup_error_;
  const bool claimed_;
  Membership memberships_[kAllMeshAxes + 1];
  // Holds the output while other members may still read an input it overlaps
  // (in place); 8-byte words keep it aligned for every dtype.
  std::vector<uint64_t> staging_;
};

absl::Status LocalCommunicator::Run(Collective op, const TensorView& in, const TensorView& out,
                                    uint32_t axes, int dim, int concat_dim,
                                    absl::Span<const int64_t> send_rows,
                                    absl::Span<const int64_t> recv_rows) {
  if (!setup_error_.ok()) return setup_error_;
  if ((axes & ~kAllMeshAxes) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: axes mask 0x%x has bits outside dp|fsdp|sp|ep_fsdp|ep (0x1f)",
                        CollectiveName(op), axes));
  }
  if (!Mesh::ValidAxes(axes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: axes mask 0x%x mixes fsdp/sp with ep_fsdp/ep", CollectiveName(op), axes));
  }
  if (world_->failed()) return Aborted(op, axes);

  const Membership& membership = memberships_[axes];
  const int group_size = membership.group == nullptr ? 1 : membership.group->size();
  Contribution mine;
  mine.op = op;
  mine.dim = dim;
  mine.concat_dim = concat_dim;
  mine.send_rows.assign(send_rows.begin(), send_rows.end());
  mine.recv_rows.assign(recv_rows.begin(), recv_rows.end());
  mine.operand_error = CheckOperands(axes, rank_, group_size, in, out, mine);
  mine.dtype = in.dtype;
  mine.in_shape = in.shape;
  mine.in = static_cast<const std::byte*>(in.data);
  mine.in_bytes = in.Bytes();
  mine.out = static_cast<const std::byte*>(out.data);
  mine.out_bytes = out.Bytes();

  absl::Span<const Contribution> members;
  if (membership.group == nullptr) {
    VEOMNI_RETURN_IF_ERROR(mine.operand_error);
    members = absl::Span<const Contribution>(&mine, 1);
  } else {
    VEOMNI_RETURN_IF_ERROR(
        ArriveWithOperands(*membership.group, membership.index, std::move(mine), op, axes));
    members = membership.group->contributions;
  }

  // Every member reaches the same verdict from the same contributions.
  absl::Status verdict = membership.group == nullptr
                             ? absl::OkStatus()
                             : CheckAgreement(op, axes, members, membership.group->ranks);
  if (verdict.ok() && op == Collective::kAllToAllV) {
    static const int kSelf[1] = {0};
    verdict = CheckRowExchange(axes, members,
                               membership.group == nullptr
                                   ? absl::Span<const int>(kSelf)
                                   : absl::Span<const int>(membership.group->ranks));
  }
  bool staged = false;
  if (verdict.ok()) {
    const Contribution& self = members[membership.index];
    for (const Contribution& member : members) {
      staged = staged || Overlap(self.out, self.out_bytes, member.in, member.in_bytes);
    }
    std::byte* dst = static_cast<std::byte*>(out.data);
    if (staged) {
      staging_.resize((self.out_bytes + 7) / 8);
      dst = reinterpret_cast<std::byte*>(staging_.data());
    }
    Compute(members, membership.index, dst);
  }
  if (membership.group != nullptr) {
    ArriveAfterReading(*membership.group, membership.index);
    VEOMNI_RETURN_IF_ERROR(verdict);
    if (world_->failed()) return Aborted(op, axes);
  }
  if (staged && out.Bytes() > 0) std::memcpy(out.data, staging_.data(), out.Bytes());
  return absl::OkStatus();
}

absl::Status LocalCommunicator::ArriveWithOperands(GroupState& group, int index, Contribution mine,
                                                   Collective op, uint32_t axes) {
  const Clock::time_point start = Clock::now();
  // Clamped so that an infinite timeout does not overflow the time point.
  const absl::Duration wait = std::min(world_->timeout, absl::Hours(24 * 365));
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(wait));

  std::unique_lock<std::mutex> lock(group.mu);
  // Checked under the group's lock: a member that gave up waiting failed the
  // world under this lock, so nobody can complete its barrier afterwards.
  if (world_->failed()) return Aborted(op, axes);
  group.contributions[index] = std::move(mine);
  const uint64_t generation = group.generation;
  group.arrived_at[index] = true;
  if (++group.arrived == group.size()) {
    group.arrived = 0;
    std::fill(group.arrived_at.begin(), group.arrived_at.end(), false);
    ++group.generation;
    group.cv.notify_all();
    return absl::OkStatus();
  }
  group.cv.wait_until(lock, deadline,
                      [&] { return group.generation != generation || world_->failed(); });
  // Once the barrier completed the others read this rank's input: go on.
  if (group.generation != generation) return absl::OkStatus();

  auto deadline_exceeded = [&](absl::Duration waited) {
    std::vector<int> missing;
    for (int i = 0; i < group.size(); ++i) {
      if (!group.arrived_at[i]) missing.push_back(group.ranks[i]);
    }
    return absl::DeadlineExceededError(
        absl::StrCat(Label(op, axes), ": rank ", rank_, " waited ", absl::FormatDuration(waited),
                     " for ", FormatRanks(missing), "; a rank stopped responding"));
  };
  if (group.timed_out && group.timed_out_generation == generation) {
    // Another member of this barrier gave up first: the same diagnosis.
    return deadline_exceeded(
        absl::Trunc(absl::FromChrono(Clock::now() - start), absl::Milliseconds(1)));
  }
  if (world_->failed()) return Aborted(op, axes);

  group.timed_out = true;
  group.timed_out_generation = generation;
  absl::Status status = deadline_exceeded(world_->timeout);
  world_->Fail(rank_, status);
  lock.unlock();
  world_->WakeAll();
  return status;
}

void LocalCommunicator::ArriveAfterReading(GroupState& group, int index) {
  std::unique_lock<std::mutex> lock(group.mu);
  const uint64_t generation = group.generation;
  group.arrived_at[index] = true;
  if (++group.arrived == group.size()) {
    group.arrived = 0;
    std::fill(group.arrived_at.begin(), group.arrived_at.end(), false);
    ++group.generation;
    group.cv.notify_all();
    return;
  }
  group.cv.wait(lock, [&] { return group.generation != generation; });
}

}  // namespace

LocalWorld::LocalWorld(Mesh mesh, absl::Duration timeout)
    : state_(std::make_shared<comm_internal::LocalWorldState>(mesh, timeout)) {}

std::unique_ptr<Communicator> LocalWorld::ForRank(int rank) {
  if (!state_->mesh_error.ok()) {
    return std::make_unique<LocalCommunicator>(state_, rank, state_->mesh_error, false);
  }
  const Mesh& mesh = state_->mesh;
  if (rank < 0 || rank >= mesh.size()) {
    return std::make_unique<LocalCommunicator>(
        state_, rank,
        absl::InvalidArgumentError(
            absl::StrCat("local world: rank ", rank, " is outside the mesh of ", mesh.size(),
                         " ranks (dp=", mesh.dp, ", fsdp=", mesh.fsdp, ", sp=", mesh.sp, ")")),
        false);
  }
  {
    std::lock_guard<std::mutex> lock(state_->claim_mu);
    if (state_->claimed[rank]) {
      return std::make_unique<LocalCommunicator>(
          state_, rank,
          absl::FailedPreconditionError(
              absl::StrCat("local world: rank ", rank, " already has a communicator")),
          false);
    }
    state_->claimed[rank] = true;
  }
  return std::make_unique<LocalCommunicator>(state_, rank, absl::OkStatus(), true);
}

}  // namespace veomni::runtime
