// Expert parallelism: vo.moe_experts and its gradient when each member of an
// ep group owns E/ep consecutive experts. Routing stays local; each
// (token, slot) row travels to its expert's owner with a variable-count
// all-to-all, the owner runs the CPU expert kernel on what it received (its
// experts only), and the results travel back. Dropless: the exchange
// buffers are sized at run time from the counts.

#ifndef VEOMNI_RUNTIME_EXECUTOR_EXPERTPARALLEL_H
#define VEOMNI_RUNTIME_EXECUTOR_EXPERTPARALLEL_H

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"
#include "runtime/comm/Communicator.h"
#include "runtime/device/Device.h"

namespace veomni::runtime {

// inputs: x [T, H], experts [T, k] (global ids), weights [T, k],
// gate_up [L, 2I, H], down [L, H, I] (this member's experts g*L .. g*L+L-1,
// g its index in the group over `axes`); outputs: y [T, H]. Equals
// moe_experts on the full expert tensors.
absl::Status MoeExpertsExpertParallel(Communicator& comm, uint32_t axes,
                                      absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs);

// inputs: those of MoeExpertsExpertParallel, then y_grad [T, H]; outputs:
// x_grad [T, H], weights_grad [T, k], gate_up_grad [L, 2I, H],
// down_grad [L, H, I]. The weight gradients are this member's experts'
// sums over every (token, slot) of the group routed to them.
absl::Status MoeExpertsGradExpertParallel(Communicator& comm, uint32_t axes,
                                          absl::Span<const TensorView> inputs,
                                          absl::Span<const TensorView> outputs);

// The same exchange and results for tensors in `device` memory the host
// cannot address (a GPU), with that device's kernels: the expert ids come to
// the host to route and size the buffers, `embedding` gathers the rows to
// send, the communicator's all_to_all_v moves them, the owner runs the
// device's moe_experts(_grad) on what it received, and `embedding` plus
// `reduce_sum` combine each token's slots. Sums round as those kernels do,
// so this equals one rank to float tolerance rather than bit for bit. It
// waits for the device (the counts size the buffers), so a function that
// holds it cannot be captured as a graph.
absl::Status MoeExpertsExpertParallelOnDevice(Device& device, Communicator& comm, uint32_t axes,
                                              absl::Span<const TensorView> inputs,
                                              absl::Span<const TensorView> outputs);
absl::Status MoeExpertsGradExpertParallelOnDevice(Device& device, Communicator& comm,
                                                  uint32_t axes,
                                                  absl::Span<const TensorView> inputs,
                                                  absl::Span<const TensorView> outputs);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_EXECUTOR_EXPERTPARALLEL_H
