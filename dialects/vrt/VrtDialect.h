//===- VrtDialect.h - the runtime-program dialect -------------*- C++ -*-===//
#ifndef VEOMNI_DIALECTS_VRT_VRTDIALECT_H
#define VEOMNI_DIALECTS_VRT_VRTDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/vrt/VrtDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/vrt/VrtOps.h.inc"

namespace veomni::vrt {
/// Function attribute: bytes of the arena the function needs.
inline constexpr llvm::StringLiteral kArenaBytesAttr = "vrt.arena_bytes";
/// Arena offsets are multiples of this.
inline constexpr int64_t kArenaAlignment = 64;
/// The forwarded store that writes `value` into the state (so the value has
/// no arena offset), or null.
StoreOp getForwardedStore(mlir::Value value);
} // namespace veomni::vrt

#endif // VEOMNI_DIALECTS_VRT_VRTDIALECT_H
