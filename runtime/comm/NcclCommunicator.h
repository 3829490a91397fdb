// The communicator of the CUDA backend: NCCL, one communicator per mesh-axis
// group, split from the world's on first use (every rank runs the same
// program, so all reach each split in the same order). Collectives run on the
// stream of the calling thread's CUDA context, after the kernels that produce
// their inputs. Layout changes that NCCL's contiguous chunks need (gathering
// along an inner dim, Ulysses' all-to-all) are strided copies on that stream.
// Not yet: AllToAllV does not check that members' counts agree (expert
// parallelism, its only user, does not run on CUDA yet).

#ifndef VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H
#define VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/comm/Communicator.h"
#include <string>

#include "runtime/device/Device.h"

namespace veomni::runtime {

// A new NCCL unique id, made by rank 0 and handed to the others by the
// rendezvous (bytes). Unimplemented in a build without CUDA.
absl::StatusOr<std::string> MakeNcclId();

// This process's rank of `mesh`, on `device`, which must be the CUDA device
// the executor uses and must outlive the communicator; `nccl_id` is rank
// 0's MakeNcclId. Blocks until every rank has joined NCCL.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const Mesh& mesh, int rank,
                                                                     const std::string& nccl_id,
                                                                     Device& device);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H
