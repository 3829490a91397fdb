#include "runtime/executor/CollectiveJoins.h"

#include <algorithm>

namespace veomni::runtime {

std::vector<int> PlanCollectiveJoins(const std::vector<JoinStep>& steps) {
  struct Pending {
    ByteRange range;
    int ordinal;
  };
  std::vector<Pending> pending;
  std::vector<int> joins(steps.size(), -1);
  int ordinal = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const JoinStep& step = steps[i];
    switch (step.kind) {
      case JoinStep::Kind::kDeferredCollective:
        // Collectives run in order on one stream: no join between them.
        for (const ByteRange& range : step.touched) pending.push_back({range, ordinal});
        ++ordinal;
        continue;
      case JoinStep::Kind::kJoinsAll:
        // It joins everything itself, but may read its inputs first.
        if (!pending.empty()) joins[i] = ordinal - 1;
        pending.clear();
        continue;
      case JoinStep::Kind::kKernel:
        break;
    }
    int through = -1;
    for (const ByteRange& range : step.touched) {
      for (const Pending& p : pending) {
        if (range.begin < p.range.end && p.range.begin < range.end) {
          through = std::max(through, p.ordinal);
        }
      }
    }
    if (through < 0) continue;
    joins[i] = through;
    pending.erase(std::remove_if(pending.begin(), pending.end(),
                                 [&](const Pending& p) { return p.ordinal <= through; }),
                  pending.end());
  }
  return joins;
}

}  // namespace veomni::runtime
