// Where the kernels' stream waits for the collectives that the executor
// leaves running on the communicator's stream.

#ifndef VEOMNI_RUNTIME_EXECUTOR_COLLECTIVEJOINS_H
#define VEOMNI_RUNTIME_EXECUTOR_COLLECTIVEJOINS_H

#include <cstdint>
#include <vector>

namespace veomni::runtime {

struct ByteRange {
  uintptr_t begin = 0, end = 0;  // [begin, end)
};

// One command of a function, as the join plan sees it.
struct JoinStep {
  enum class Kind {
    kKernel,             // runs on the kernels' stream
    kDeferredCollective, // runs on the communicator's stream, joined later
    kJoinsAll,           // waits for every collective itself (after it
                         // may have read its inputs: it waits first too)
  };
  Kind kind = Kind::kKernel;
  std::vector<ByteRange> touched;  // what it reads and writes
};

// For each step, the ordinal among the deferred collectives (0 for the
// first) of the latest one it must wait for first, or -1. A kernel waits for
// the latest collective whose bytes it touches; the collectives run in order
// on one stream, so that wait covers the earlier ones too, and collectives
// issued after that one keep running.
std::vector<int> PlanCollectiveJoins(const std::vector<JoinStep>& steps);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_EXECUTOR_COLLECTIVEJOINS_H
