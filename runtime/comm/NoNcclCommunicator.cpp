// A build without CUDA has no NCCL communicator; asking for it says so.

#include "runtime/comm/NcclCommunicator.h"

namespace veomni::runtime {

namespace {
constexpr absl::string_view kNoNccl =
    "this build has no CUDA backend, so no NCCL communicator (nvcc was not found when it "
    "was configured)";
}  // namespace

absl::StatusOr<std::string> MakeNcclId() { return absl::UnimplementedError(kNoNccl); }

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const Mesh&, int,
                                                                     const std::string&,
                                                                     Device&) {
  return absl::UnimplementedError(kNoNccl);
}

}  // namespace veomni::runtime
