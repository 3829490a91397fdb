//===- HostTensor.h - constant tensors seen by the importers --*- C++ -*-===//
//
// Importers see constants (initializers, shape arithmetic) before they emit
// IR. A HostTensor holds one in its raw little-endian bytes; folding shape
// arithmetic on it keeps static exports free of Shape/Gather/Concat chains.
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_FRONTENDS_COMMON_HOSTTENSOR_H
#define VEOMNI_FRONTENDS_COMMON_HOSTTENSOR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir {
class MLIRContext;
class Type;
} // namespace mlir

namespace veomni {

enum class HostDType { F32, F64, F16, BF16, I64, I32, I8, U8, Bool };

llvm::StringRef hostDTypeName(HostDType dtype);
int64_t hostDTypeBytes(HostDType dtype);
bool isFloatingPoint(HostDType dtype);
/// The MLIR element type of a dtype; F64 maps to f32 and I8/U8 to i32, the
/// nearest types vo has (values are converted when materialized).
mlir::Type hostDTypeToVoElement(mlir::MLIRContext *context, HostDType dtype);

class HostTensor {
public:
  HostTensor() = default;
  HostTensor(HostDType dtype, llvm::ArrayRef<int64_t> shape,
             std::vector<uint8_t> bytes);

  static HostTensor fromInt64(llvm::ArrayRef<int64_t> shape,
                              llvm::ArrayRef<int64_t> values);
  static HostTensor fromDouble(HostDType dtype, llvm::ArrayRef<int64_t> shape,
                               llvm::ArrayRef<double> values);

  HostDType dtype() const { return dtype_; }
  llvm::ArrayRef<int64_t> shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numElements() const;
  llvm::ArrayRef<uint8_t> bytes() const { return bytes_; }

  /// Values converted to int64 (floats truncate) or double.
  std::vector<int64_t> toInt64() const;
  std::vector<double> toDouble() const;
  /// Same values in another dtype.
  HostTensor castTo(HostDType dtype) const;
  /// True when every element equals the first (and there is at least one).
  bool isSplat() const;

private:
  HostDType dtype_ = HostDType::F32;
  llvm::SmallVector<int64_t, 4> shape_;
  std::vector<uint8_t> bytes_;
};

/// Numpy broadcasting of two shapes; an error names both.
llvm::Expected<llvm::SmallVector<int64_t, 4>>
broadcastHostShapes(llvm::ArrayRef<int64_t> lhs, llvm::ArrayRef<int64_t> rhs);

/// Elementwise op over broadcast operands of one dtype. `op` is one of
/// add sub mul div pow max min eq lt gt le ge (comparisons give Bool); integer
/// division truncates toward zero like ONNX Div.
llvm::Expected<HostTensor> foldElementwise(llvm::StringRef op,
                                           const HostTensor &lhs,
                                           const HostTensor &rhs);

/// cond ? onTrue : onFalse with broadcasting.
llvm::Expected<HostTensor> foldSelect(const HostTensor &cond,
                                      const HostTensor &onTrue,
                                      const HostTensor &onFalse);

/// Same bytes, another shape of the same element count.
llvm::Expected<HostTensor> reshapeHost(const HostTensor &input,
                                       llvm::ArrayRef<int64_t> shape);

/// Broadcast to `shape` (numpy rules).
llvm::Expected<HostTensor> broadcastHost(const HostTensor &input,
                                         llvm::ArrayRef<int64_t> shape);

/// Rows `indices` of `input` along `axis` (ONNX Gather).
llvm::Expected<HostTensor> gatherHost(const HostTensor &input,
                                      const HostTensor &indices, int64_t axis);

/// Strided window per axis (start/limit/stride have one entry per dim).
HostTensor sliceHost(const HostTensor &input, llvm::ArrayRef<int64_t> start,
                     llvm::ArrayRef<int64_t> limit,
                     llvm::ArrayRef<int64_t> stride);

/// Joins tensors of one dtype and rank along `axis`.
llvm::Expected<HostTensor> concatHost(llvm::ArrayRef<HostTensor> inputs,
                                      int64_t axis);

/// Permutes dimensions: result dim i is input dim perm[i].
HostTensor transposeHost(const HostTensor &input,
                         llvm::ArrayRef<int64_t> permutation);

} // namespace veomni

#endif // VEOMNI_FRONTENDS_COMMON_HOSTTENSOR_H
