// W ranks as threads of one process, exchanging through shared memory: the
// communicator of the CPU backend, which is how CI runs every recipe.
//
// A collective is two barriers on its group. Each member publishes its
// operands and arrives at the first; then every member validates all members'
// operands (so all reach the same verdict) and computes its own output by
// reading the others' inputs directly; at the second barrier nobody may reuse
// an input that another member is still reading. Reductions add the members
// in group order in float, so every member gets the same bits.

#ifndef VEOMNI_RUNTIME_COMM_LOCALCOMMUNICATOR_H
#define VEOMNI_RUNTIME_COMM_LOCALCOMMUNICATOR_H

#include <memory>

#include "absl/time/time.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/Mesh.h"

namespace veomni::runtime {

namespace comm_internal {
struct LocalWorldState;
}  // namespace comm_internal

class LocalWorld {
 public:
  // `timeout`: how long a rank waits at a collective for the rest of its
  // group before it returns DeadlineExceeded and fails the world.
  LocalWorld(Mesh mesh, absl::Duration timeout);
  LocalWorld(const LocalWorld&) = delete;
  LocalWorld& operator=(const LocalWorld&) = delete;

  // The communicator of `rank`, to be used by that rank's thread. Never null:
  // for a rank outside the mesh, a mesh with a degree below 1, or a rank whose
  // communicator is still alive, every collective returns the error instead.
  // Communicators keep the world's shared state alive on their own, and their
  // Abort may be called from any thread (a watchdog, say).
  std::unique_ptr<Communicator> ForRank(int rank);

 private:
  std::shared_ptr<comm_internal::LocalWorldState> state_;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_LOCALCOMMUNICATOR_H
