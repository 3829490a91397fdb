#include "runtime/comm/Mesh.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace veomni::runtime {
namespace {

constexpr std::array<const char*, 5> kAxisNames = {"dp", "fsdp", "sp", "ep_fsdp", "ep"};
constexpr uint32_t kBlockAxes = kAxisFsdp | kAxisSp;
constexpr uint32_t kExpertAxes = kAxisEpFsdp | kAxisEp;

}  // namespace

int Mesh::size() const { return dp * fsdp * sp; }

std::array<int, 3> Mesh::Coords(int rank) const {
  return {rank / (fsdp * sp), (rank / sp) % fsdp, rank % sp};
}

bool Mesh::ValidAxes(uint32_t axes) {
  return (axes & ~kAllMeshAxes) == 0 && !((axes & kBlockAxes) && (axes & kExpertAxes));
}

std::vector<int> Mesh::Group(int rank, uint32_t axes) const {
  if ((axes & kExpertAxes) != 0) {
    // Within the rank's dp slice, g = rank % G; members keep the coordinates
    // the mask does not span.
    const int block = fsdp * sp;
    const int g = rank % block;
    std::vector<int> group;
    for (int other = 0; other < size(); ++other) {
      const int h = other % block;
      if (!(axes & kAxisDp) && other / block != rank / block) continue;
      if (!(axes & kAxisEpFsdp) && h / ep != g / ep) continue;
      if (!(axes & kAxisEp) && h % ep != g % ep) continue;
      group.push_back(other);
    }
    return group;
  }
  const std::array<int, 3> coords = Coords(rank);
  const std::array<int, 3> degrees = {dp, fsdp, sp};
  std::array<int, 3> begin, end;
  for (int axis = 0; axis < 3; ++axis) {
    const bool spans = (axes & (1u << axis)) != 0;
    begin[axis] = spans ? 0 : coords[axis];
    end[axis] = spans ? degrees[axis] : coords[axis] + 1;
  }
  std::vector<int> group;
  for (int d = begin[0]; d < end[0]; ++d) {
    for (int f = begin[1]; f < end[1]; ++f) {
      for (int s = begin[2]; s < end[2]; ++s) group.push_back((d * fsdp + f) * sp + s);
    }
  }
  return group;
}

absl::StatusOr<uint32_t> Mesh::ParseAxes(absl::Span<const std::string> names) {
  uint32_t axes = 0;
  int previous = -1;
  for (const std::string& name : names) {
    int axis = 0;
    while (axis < 5 && name != kAxisNames[axis]) ++axis;
    if (axis == 5) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown mesh axis '", name, "'; the axes are dp, fsdp, sp, ep_fsdp and ep"));
    }
    if (axis == previous) {
      return absl::InvalidArgumentError(absl::StrCat("mesh axis '", name, "' is listed twice"));
    }
    if (axis < previous) {
      return absl::InvalidArgumentError(
          absl::StrCat("mesh axes (", absl::StrJoin(names, ", "),
                       ") are out of order; list them as dp, fsdp, sp, ep_fsdp, ep"));
    }
    previous = axis;
    axes |= 1u << axis;
  }
  if (!ValidAxes(axes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mesh axes (", absl::StrJoin(names, ", "),
                     ") mix fsdp/sp with ep_fsdp/ep, which factor the same ranks"));
  }
  return axes;
}

std::string FormatAxes(uint32_t axes) {
  std::vector<const char*> names;
  for (int axis = 0; axis < 5; ++axis) {
    if ((axes & (1u << axis)) != 0) names.push_back(kAxisNames[axis]);
  }
  return absl::StrCat("(", absl::StrJoin(names, ", "), ")");
}

}  // namespace veomni::runtime
