// The device mesh of a recipe: W = dp * fsdp * sp ranks on three axes, and
// the group of ranks that a collective over some of those axes spans.

#ifndef VEOMNI_RUNTIME_COMM_MESH_H
#define VEOMNI_RUNTIME_COMM_MESH_H

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace veomni::runtime {

// Mesh axes, outer to inner: dp, fsdp, sp. rank = (dp_i * fsdp + fsdp_i) * sp + sp_i.
//
// Expert parallelism re-factors each (fsdp, sp) group of G = fsdp * sp ranks,
// flattened g = fsdp_i * sp + sp_i, into (ep_fsdp, ep) with ep innermost:
// ep_i = g % ep, ep_fsdp_i = g / ep. Those two are axes of their own (an ep
// group need not be a union of fsdp/sp groups: ep=2 inside sp=4), so a mask
// may combine them with dp but not with fsdp or sp.
enum MeshAxis : uint32_t {  // bit mask of axes
  kAxisDp = 1,
  kAxisFsdp = 2,
  kAxisSp = 4,
  kAxisEpFsdp = 8,
  kAxisEp = 16,
};
inline constexpr uint32_t kAllMeshAxes = kAxisDp | kAxisFsdp | kAxisSp | kAxisEpFsdp | kAxisEp;

struct Mesh {
  int dp = 1, fsdp = 1, sp = 1;
  int ep = 1;  // divides fsdp * sp; not a factor of size()

  // A mask a group can span: bits inside kAllMeshAxes, and not both an
  // fsdp/sp bit and an ep_fsdp/ep bit.
  static bool ValidAxes(uint32_t axes);

  int size() const;
  // {dp_i, fsdp_i, sp_i}. Requires 0 <= rank < size().
  std::array<int, 3> Coords(int rank) const;
  // The ranks that differ from `rank` only along the axes in `axes`, ordered by
  // their coordinates on those axes (outer axis slowest), which is ascending
  // rank order. Its index of `rank` is the rank's position in the group.
  // axes == 0 gives {rank}; bits outside kAllMeshAxes are ignored. Over
  // ep_fsdp or ep too the order is ascending rank, which is ascending
  // (ep_fsdp_i, ep_i). Requires ValidAxes(axes).
  std::vector<int> Group(int rank, uint32_t axes) const;

  // "dp", "fsdp", "sp", "ep_fsdp", "ep", listed in that order, each at most
  // once, not mixing fsdp/sp with ep_fsdp/ep. An unknown, repeated or
  // out-of-order name is InvalidArgument: a group's order is always outer to
  // inner, so a list in another order would suggest an order it lacks.
  static absl::StatusOr<uint32_t> ParseAxes(absl::Span<const std::string> names);
};

// "(fsdp, sp)"; "()" for no axes.
std::string FormatAxes(uint32_t axes);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_MESH_H
