// A build without CUDA has no NCCL communicator; asking for it says so.

#include "runtime/comm/NcclCommunicator.h"

namespace veomni::runtime {

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const Mesh&, Rendezvous&,
                                                                     Device&) {
  return absl::UnimplementedError(
      "this build has no CUDA backend, so no NCCL communicator (nvcc was not found when it "
      "was configured)");
}

}  // namespace veomni::runtime
