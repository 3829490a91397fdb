//===- VoDialect.h - the vo graph dialect ---------------------*- C++ -*-===//
#ifndef VEOMNI_DIALECTS_VO_VODIALECT_H
#define VEOMNI_DIALECTS_VO_VODIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "dialects/vo/VoEnums.h.inc"

#include "dialects/vo/VoDialect.h.inc"

namespace veomni::vo {
/// Function argument/result attribute: the name of an input or output.
inline constexpr llvm::StringLiteral kNameAttr = "vo.name";
/// Function argument/result attribute binding it to persistent state:
/// "param:<name>", "grad:<name>", "exp_avg:<name>", "exp_avg_sq:<name>".
inline constexpr llvm::StringLiteral kStateAttr = "vo.state";
/// vo.parameter attribute set by vo-shard-fsdp: a dictionary with
/// `mesh_axes` (array of axis names), `group_size` and `elements` (per rank).
inline constexpr llvm::StringLiteral kShardAttr = "vo.shard";
/// vo.parameter attribute set by vo-shard-experts on expert weights [E, ...]:
/// {group_size = ep}. Each member of an ep group owns E/ep consecutive
/// experts, and every vo.param of it reads that [E/ep, ...] block.
inline constexpr llvm::StringLiteral kExpertShardAttr = "vo.expert_shard";
/// Module attribute set by vo-shard-fsdp: {dp, fsdp, sp, ep} degrees.
inline constexpr llvm::StringLiteral kMeshAttr = "vo.mesh";
/// The mesh axes: dp, fsdp, sp outer to inner; ep_fsdp and ep re-factor the
/// (fsdp, sp) ranks (ep innermost), so they never combine with fsdp or sp.
/// The index of a name is its bit in the runtime's axis mask.
inline constexpr llvm::StringLiteral kMeshAxisNames[] = {"dp", "fsdp", "sp", "ep_fsdp",
                                                         "ep"};
} // namespace veomni::vo

#define GET_ATTRDEF_CLASSES
#include "dialects/vo/VoAttrs.h.inc"

#endif // VEOMNI_DIALECTS_VO_VODIALECT_H
