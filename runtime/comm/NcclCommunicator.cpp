#include "runtime/comm/NcclCommunicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cuda/CudaContext.h"
#include "runtime/kernels/cuda/CudaSupport.h"

namespace veomni::runtime {
namespace {

using cuda::CudaStatus;

absl::Status NcclStatus(ncclResult_t result, absl::string_view what) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": NCCL: ", ncclGetErrorString(result)));
}

absl::StatusOr<int> NormalizeDim(int dim, size_t rank, absl::string_view what) {
  int n = static_cast<int>(rank);
  if (dim < -n || dim >= n) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": dim ", dim, " of a rank-", n,
                                                   " tensor"));
  }
  return dim < 0 ? dim + n : dim;
}

int64_t Product(const std::vector<int64_t>& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Mesh mesh, int rank, Device& device)
      : mesh_(mesh), rank_(rank), device_(device) {}
  ~NcclCommunicator() override {
    if (comm_stream_ && !aborted_) cudaStreamSynchronize(comm_stream_);
    for (auto& [axes, comm] : groups_) {
      if (comm) (aborted_ ? ncclCommAbort(comm) : ncclCommDestroy(comm));
    }
    if (world_) (aborted_ ? ncclCommAbort(world_) : ncclCommDestroy(world_));
    if (comm_stream_) cudaStreamDestroy(comm_stream_);
    if (ready_) cudaEventDestroy(ready_);
    if (done_) cudaEventDestroy(done_);
    for (cudaEvent_t event : tickets_) cudaEventDestroy(event);
  }

  absl::Status Init(const std::string& nccl_id) {
    ncclUniqueId id;
    if (nccl_id.size() != sizeof(id)) return absl::InternalError("a malformed NCCL id arrived");
    std::memcpy(&id, nccl_id.data(), sizeof(id));
    VEOMNI_RETURN_IF_ERROR(device_.Activate());
    // The highest priority: a collective's kernels start as soon as SMs free.
    int lowest = 0, highest = 0;
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaDeviceGetStreamPriorityRange(&lowest, &highest), "stream priorities"));
    VEOMNI_RETURN_IF_ERROR(CudaStatus(
        cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, highest),
        "the NCCL stream"));
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "NCCL events"));
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "NCCL events"));
    return NcclStatus(ncclCommInitRank(&world_, mesh_.size(), id, rank_), "ncclCommInitRank");
  }

  int rank() const override { return rank_; }
  const Mesh& mesh() const override { return mesh_; }
  bool operates_on_device() const override { return true; }

  absl::Status AllGather(const TensorView& in, const TensorView& out, uint32_t axes,
                         int dim) override {
    return OnCommStream([&] { return AllGatherOnCommStream(in, out, axes, dim); });
  }
  absl::Status ReduceScatter(const TensorView& in, const TensorView& out, uint32_t axes,
                             int dim) override {
    return OnCommStream([&] { return ReduceScatterOnCommStream(in, out, axes, dim); });
  }
  absl::Status AllReduce(const TensorView& in, const TensorView& out, uint32_t axes) override {
    return OnCommStream([&] { return AllReduceOnCommStream(in, out, axes); });
  }
  absl::Status AllToAll(const TensorView& in, const TensorView& out, uint32_t axes,
                        int split_dim, int concat_dim) override {
    return OnCommStream(
        [&] { return AllToAllOnCommStream(in, out, axes, split_dim, concat_dim); });
  }
  absl::Status AllToAllV(const TensorView& in, absl::Span<const int64_t> send_rows,
                         const TensorView& out, absl::Span<const int64_t> recv_rows,
                         uint32_t axes) override {
    return OnCommStream(
        [&] { return AllToAllVOnCommStream(in, send_rows, out, recv_rows, axes); });
  }
  void DeferJoins(bool defer) override { defer_joins_ = defer; }
  absl::StatusOr<int64_t> Ticket() override {
    if (next_ticket_ == tickets_.size()) {
      cudaEvent_t event = nullptr;
      VEOMNI_RETURN_IF_ERROR(
          CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "NCCL events"));
      tickets_.push_back(event);
    }
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaEventRecord(tickets_[next_ticket_], comm_stream_), "marking NCCL work"));
    return static_cast<int64_t>(next_ticket_++);
  }
  absl::Status JoinThrough(int64_t ticket) override {
    if (ticket < 0 || static_cast<size_t>(ticket) >= next_ticket_) {
      return absl::InternalError(absl::StrCat("no NCCL ticket ", ticket));
    }
    return CudaStatus(cudaStreamWaitEvent(ComputeStream(), tickets_[ticket], 0),
                      "joining NCCL");
  }
  absl::Status Join() override {
    // Every ticket is now behind the kernels' stream; a wait queued earlier
    // keeps the record it saw, so the events can be recorded again.
    next_ticket_ = 0;
    if (!pending_) return absl::OkStatus();
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(done_, comm_stream_), "joining NCCL"));
    VEOMNI_RETURN_IF_ERROR(
        CudaStatus(cudaStreamWaitEvent(ComputeStream(), done_, 0), "joining NCCL"));
    pending_ = false;
    return absl::OkStatus();
  }

 private:
  absl::Status AllGatherOnCommStream(const TensorView& in, const TensorView& out, uint32_t axes,
                                     int dim) {
    VEOMNI_ASSIGN_OR_RETURN(Group group, GroupOf(axes, "all_gather"));
    VEOMNI_ASSIGN_OR_RETURN(dim, NormalizeDim(dim, in.shape.size(), "all_gather"));
    if (in.dtype != out.dtype || out.shape.size() != in.shape.size() ||
        out.shape[dim] != in.shape[dim] * group.size || out.NumElements() != in.NumElements() * group.size) {
      return absl::InvalidArgumentError(absl::StrCat("all_gather: ", FormatShape(in.shape),
                                                     " -> ", FormatShape(out.shape), " over ",
                                                     group.size, " ranks"));
    }
    if (group.size == 1) return CopyOnCommStream(out.data, in.data, in.Bytes());
    const int64_t outer = Product(in.shape, 0, dim);
    const uint64_t bytes = static_cast<uint64_t>(in.Bytes());
    if (outer == 1) {
      return NcclStatus(ncclAllGather(in.data, out.data, bytes, ncclUint8, group.comm, Stream()),
                        "all_gather");
    }
    // Gather whole shards, then interleave them along `dim`.
    VEOMNI_ASSIGN_OR_RETURN(uint8_t * scratch, Scratch(bytes * group.size));
    VEOMNI_RETURN_IF_ERROR(NcclStatus(
        ncclAllGather(in.data, scratch, bytes, ncclUint8, group.comm, Stream()), "all_gather"));
    const uint64_t chunk = bytes / outer;
    for (int g = 0; g < group.size; ++g) {
      VEOMNI_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpy2DAsync(static_cast<uint8_t*>(out.data) + g * chunk, chunk * group.size,
                            scratch + g * bytes, chunk, chunk, outer, cudaMemcpyDeviceToDevice,
                            Stream()),
          "all_gather: interleave"));
    }
    return absl::OkStatus();
  }

  absl::Status ReduceScatterOnCommStream(const TensorView& in, const TensorView& out, uint32_t axes,
                             int dim) {
    VEOMNI_ASSIGN_OR_RETURN(Group group, GroupOf(axes, "reduce_scatter"));
    VEOMNI_ASSIGN_OR_RETURN(dim, NormalizeDim(dim, in.shape.size(), "reduce_scatter"));
    if (in.dtype != DType::kF32 || out.dtype != DType::kF32 ||
        out.shape.size() != in.shape.size() || in.shape[dim] != out.shape[dim] * group.size ||
        in.NumElements() != out.NumElements() * group.size) {
      return absl::InvalidArgumentError(absl::StrCat("reduce_scatter: ", FormatShape(in.shape),
                                                     " -> ", FormatShape(out.shape), " over ",
                                                     group.size, " ranks (f32 only)"));
    }
    if (group.size == 1) return CopyOnCommStream(out.data, in.data, in.Bytes());
    const int64_t outer = Product(in.shape, 0, dim);
    const uint64_t count = static_cast<uint64_t>(out.NumElements());
    const void* source = in.data;
    if (outer > 1) {
      // Member g's chunk along `dim` made contiguous: [G][outer][chunk].
      const uint64_t bytes = static_cast<uint64_t>(in.Bytes());
      const uint64_t chunk = bytes / outer / group.size;
      VEOMNI_ASSIGN_OR_RETURN(uint8_t * scratch, Scratch(bytes));
      for (int g = 0; g < group.size; ++g) {
        VEOMNI_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpy2DAsync(scratch + g * (bytes / group.size), chunk,
                              static_cast<const uint8_t*>(in.data) + g * chunk,
                              chunk * group.size, chunk, outer, cudaMemcpyDeviceToDevice,
                              Stream()),
            "reduce_scatter: gather chunks"));
      }
      source = scratch;
    }
    return NcclStatus(
        ncclReduceScatter(source, out.data, count, ncclFloat, ncclSum, group.comm, Stream()),
        "reduce_scatter");
  }

  absl::Status AllReduceOnCommStream(const TensorView& in, const TensorView& out, uint32_t axes) {
    VEOMNI_ASSIGN_OR_RETURN(Group group, GroupOf(axes, "all_reduce"));
    if (in.dtype != DType::kF32 || out.dtype != DType::kF32 ||
        in.NumElements() != out.NumElements()) {
      return absl::InvalidArgumentError("all_reduce: f32 tensors of equal size only");
    }
    if (group.size == 1) return CopyOnCommStream(out.data, in.data, in.Bytes());
    return NcclStatus(ncclAllReduce(in.data, out.data, static_cast<size_t>(in.NumElements()),
                                    ncclFloat, ncclSum, group.comm, Stream()),
                      "all_reduce");
  }

  absl::Status AllToAllOnCommStream(const TensorView& in, const TensorView& out, uint32_t axes,
                        int split_dim, int concat_dim) {
    VEOMNI_ASSIGN_OR_RETURN(Group group, GroupOf(axes, "all_to_all"));
    VEOMNI_ASSIGN_OR_RETURN(split_dim, NormalizeDim(split_dim, in.shape.size(), "all_to_all"));
    VEOMNI_ASSIGN_OR_RETURN(concat_dim,
                            NormalizeDim(concat_dim, in.shape.size(), "all_to_all"));
    const int G = group.size;
    std::vector<int64_t> chunk_shape = in.shape;
    bool ok = in.dtype == out.dtype && out.shape.size() == in.shape.size() &&
              in.shape[split_dim] % G == 0;
    if (ok) {
      chunk_shape[split_dim] /= G;
      std::vector<int64_t> expected = chunk_shape;
      expected[concat_dim] *= G;
      ok = expected == out.shape;
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "all_to_all: ", FormatShape(in.shape), " -> ", FormatShape(out.shape), " over ", G,
          " ranks (split dim ", split_dim, ", concat dim ", concat_dim, ")"));
    }
    const uint64_t total = static_cast<uint64_t>(in.Bytes());
    if (G == 1) return CopyOnCommStream(out.data, in.data, total);
    const uint64_t chunk_bytes = total / G;
    const int64_t width = DTypeBytes(in.dtype);
    VEOMNI_ASSIGN_OR_RETURN(uint8_t * scratch, Scratch(2 * total));
    uint8_t* send = scratch;
    uint8_t* recv = scratch + total;
    // Pack: chunk g (its slice along split_dim) contiguous at send + g * chunk_bytes.
    {
      const int64_t outer = Product(in.shape, 0, split_dim);
      const uint64_t row = Product(chunk_shape, split_dim, chunk_shape.size()) * width;
      for (int g = 0; g < G; ++g) {
        VEOMNI_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpy2DAsync(send + g * chunk_bytes, row,
                              static_cast<const uint8_t*>(in.data) + g * row, row * G, row,
                              outer, cudaMemcpyDeviceToDevice, Stream()),
            "all_to_all: pack"));
      }
    }
    VEOMNI_RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), "all_to_all"));
    absl::Status queued;
    for (int g = 0; g < G && queued.ok(); ++g) {
      queued = NcclStatus(
          ncclSend(send + g * chunk_bytes, chunk_bytes, ncclUint8, g, group.comm, Stream()),
          "all_to_all: send");
      if (queued.ok()) {
        queued = NcclStatus(
            ncclRecv(recv + g * chunk_bytes, chunk_bytes, ncclUint8, g, group.comm, Stream()),
            "all_to_all: recv");
      }
    }
    // The group is closed whatever happened inside it.
    absl::Status ended = NcclStatus(ncclGroupEnd(), "all_to_all");
    VEOMNI_RETURN_IF_ERROR(queued);
    VEOMNI_RETURN_IF_ERROR(ended);
    // Unpack: member j's chunk is slice j of `out` along concat_dim.
    {
      const int64_t outer = Product(chunk_shape, 0, concat_dim);
      const uint64_t row = Product(chunk_shape, concat_dim, chunk_shape.size()) * width;
      for (int j = 0; j < G; ++j) {
        VEOMNI_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpy2DAsync(static_cast<uint8_t*>(out.data) + j * row, row * G,
                              recv + j * chunk_bytes, row, row, outer,
                              cudaMemcpyDeviceToDevice, Stream()),
            "all_to_all: unpack"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status AllToAllVOnCommStream(const TensorView& in, absl::Span<const int64_t> send_rows,
                         const TensorView& out, absl::Span<const int64_t> recv_rows,
                         uint32_t axes) {
    VEOMNI_ASSIGN_OR_RETURN(Group group, GroupOf(axes, "all_to_all_v"));
    const int G = group.size;
    if (in.dtype != out.dtype || in.shape.empty() || out.shape.empty() ||
        static_cast<int>(send_rows.size()) != G || static_cast<int>(recv_rows.size()) != G ||
        Product(in.shape, 1, in.shape.size()) != Product(out.shape, 1, out.shape.size())) {
      return absl::InvalidArgumentError("all_to_all_v: malformed operands");
    }
    const uint64_t row = Product(in.shape, 1, in.shape.size()) * DTypeBytes(in.dtype);
    int64_t sent = 0, received = 0;
    for (int g = 0; g < G; ++g) {
      if (send_rows[g] < 0 || recv_rows[g] < 0) {
        return absl::InvalidArgumentError("all_to_all_v: negative row count");
      }
      sent += send_rows[g];
      received += recv_rows[g];
    }
    if (sent > in.shape[0] || received > out.shape[0]) {
      return absl::InvalidArgumentError("all_to_all_v: counts exceed the buffers");
    }
    if (G == 1) {
      if (send_rows[0] != recv_rows[0]) {
        return absl::InvalidArgumentError("all_to_all_v: a group of one sends what it receives");
      }
      return CopyOnCommStream(out.data, in.data, send_rows[0] * row);
    }
    VEOMNI_RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), "all_to_all_v"));
    absl::Status queued;
    int64_t send_at = 0, recv_at = 0;
    for (int g = 0; g < G && queued.ok(); ++g) {
      if (send_rows[g] > 0) {
        queued = NcclStatus(
            ncclSend(static_cast<const uint8_t*>(in.data) + send_at * row, send_rows[g] * row,
                     ncclUint8, g, group.comm, Stream()),
            "all_to_all_v: send");
      }
      if (queued.ok() && recv_rows[g] > 0) {
        queued = NcclStatus(
            ncclRecv(static_cast<uint8_t*>(out.data) + recv_at * row, recv_rows[g] * row,
                     ncclUint8, g, group.comm, Stream()),
            "all_to_all_v: recv");
      }
      send_at += send_rows[g];
      recv_at += recv_rows[g];
    }
    absl::Status ended = NcclStatus(ncclGroupEnd(), "all_to_all_v");
    VEOMNI_RETURN_IF_ERROR(queued);
    return ended;
  }

  void Abort(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_.exchange(true)) return;
    abort_status_ = status;
    for (auto& [axes, comm] : groups_) {
      if (comm) ncclCommAbort(comm);
      comm = nullptr;
    }
    if (world_) ncclCommAbort(world_);
    world_ = nullptr;
  }

  struct Group {
    ncclComm_t comm = nullptr;
    int size = 1;
  };

  // The kernels' stream of the calling thread's device.
  cudaStream_t ComputeStream() const {
    cuda::CudaContext* context = cuda::CurrentCudaContext();
    return context ? context->stream : nullptr;
  }
  // Where the collectives and their packing copies run.
  cudaStream_t Stream() const { return comm_stream_; }
  // A group of one: its collective is a copy, ordered with the others.
  absl::Status CopyOnCommStream(void* to, const void* from, uint64_t bytes) {
    if (to == from || bytes == 0) return absl::OkStatus();
    return CudaStatus(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, Stream()),
                      "a one-rank collective");
  }

  // Runs `collective` on the communicator's stream after the work queued on
  // the kernels' stream so far; the kernels' stream waits for it now, or at
  // Join() when joins are deferred. Collectives stay in order among
  // themselves (one stream), so their scratch is shared safely.
  template <typename Collective>
  absl::Status OnCommStream(Collective collective) {
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(ready_, ComputeStream()), "NCCL order"));
    VEOMNI_RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(comm_stream_, ready_, 0), "NCCL order"));
    pending_ = true;
    absl::Status status = collective();
    absl::Status joined = defer_joins_ ? absl::OkStatus() : Join();
    VEOMNI_RETURN_IF_ERROR(status);
    return joined;
  }

  absl::StatusOr<Group> GroupOf(uint32_t axes, absl::string_view what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) {
      return absl::AbortedError(absl::StrCat(what, ": the run was aborted: ",
                                             abort_status_.message()));
    }
    if (!Mesh::ValidAxes(axes)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad mesh axes ", axes));
    }
    std::vector<int> members = mesh_.Group(rank_, axes);
    Group group;
    group.size = static_cast<int>(members.size());
    if (group.size == 1) return group;
    auto found = groups_.find(axes);
    if (found == groups_.end()) {
      // Every rank splits for this mask now (the program reaches it
      // everywhere); a group is named by its first rank.
      ncclComm_t comm = nullptr;
      VEOMNI_RETURN_IF_ERROR(NcclStatus(ncclCommSplit(world_, members[0], rank_, &comm, nullptr),
                                        absl::StrCat(what, ": splitting ", FormatAxes(axes))));
      found = groups_.emplace(axes, comm).first;
    }
    group.comm = found->second;
    return group;
  }

  // Device scratch of at least `bytes`, reused by every collective (they run
  // in order on the communicator's stream).
  absl::StatusOr<uint8_t*> Scratch(uint64_t bytes) {
    if (scratch_.size() < bytes) {
      // The old buffer stays allocated: a CUDA graph captured earlier may
      // still read and write it when replayed.
      VEOMNI_ASSIGN_OR_RETURN(DeviceBuffer larger, DeviceBuffer::Allocate(
                                                       device_, bytes, "collective scratch"));
      // Allocate zeroes it on the kernels' stream: the collective, on ours,
      // must write it after that.
      VEOMNI_RETURN_IF_ERROR(
          CudaStatus(cudaEventRecord(ready_, ComputeStream()), "ordering new scratch"));
      VEOMNI_RETURN_IF_ERROR(
          CudaStatus(cudaStreamWaitEvent(comm_stream_, ready_, 0), "ordering new scratch"));
      retired_scratch_.push_back(std::move(scratch_));
      scratch_ = std::move(larger);
    }
    return scratch_.data();
  }

  Mesh mesh_;
  int rank_;
  Device& device_;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool defer_joins_ = false;
  bool pending_ = false;  // collectives the kernels' stream has not waited for
  std::vector<cudaEvent_t> tickets_;  // Ticket()'s events, reused after Join()
  size_t next_ticket_ = 0;
  ncclComm_t world_ = nullptr;
  std::map<uint32_t, ncclComm_t> groups_;
  DeviceBuffer scratch_;
  std::vector<DeviceBuffer> retired_scratch_;
  std::mutex mu_;
  std::atomic<bool> aborted_{false};
  absl::Status abort_status_;
};

}  // namespace

absl::StatusOr<std::string> MakeNcclId() {
  ncclUniqueId id;
  VEOMNI_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const Mesh& mesh, int rank,
                                                                     const std::string& nccl_id,
                                                                     Device& device) {
  if (rank < 0 || rank >= mesh.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside the artifact's mesh of ", mesh.size()));
  }
  if (device.host_accessible()) {
    return absl::InvalidArgumentError("NCCL needs a CUDA device");
  }
  auto communicator = std::make_unique<NcclCommunicator>(mesh, rank, device);
  VEOMNI_RETURN_IF_ERROR(communicator->Init(nccl_id));
  return std::unique_ptr<Communicator>(std::move(communicator));
}

}  // namespace veomni::runtime
