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

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_EXECUTOR_EXPERTPARALLEL_H
