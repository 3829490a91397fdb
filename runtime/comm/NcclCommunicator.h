// The communicator of the CUDA backend: NCCL, one communicator per mesh-axis
// group, split from the world's on first use (every rank runs the same
// program, so all reach each split in the same order). Collectives run on the
// stream of the calling thread's CUDA context, after the kernels that produce
// their inputs. Layout changes that NCCL's contiguous chunks need (gathering
// along an inner dim, Ulysses' all-to-all) are strided copies on that stream.

#ifndef VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H
#define VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/Rendezvous.h"
#include "runtime/device/Device.h"

namespace veomni::runtime {

// This process's rank of `mesh` (rendezvous.rank()), on `device`, which must
// be the CUDA device the executor uses and must outlive the communicator.
// Rank 0 makes the NCCL id and the rendezvous hands it to the others.
// Unimplemented in a build without CUDA.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const Mesh& mesh,
                                                                     Rendezvous& rendezvous,
                                                                     Device& device);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_NCCLCOMMUNICATOR_H
