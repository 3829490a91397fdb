// RUN: not veomni-opt %s 2>&1 | FileCheck %s
// A .mlir with a type error: one diagnostic naming the op and the numbers,
// and a non-zero exit.

// CHECK: veomni-opt-errors.mlir:[[# @LINE + 2]]:8: error: 'vo.matmul' op expects contracting dims to match, got 8 (lhs [2, 8]) and 4 (rhs [4, 8])
func.func @type_error(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>) -> tensor<2x8xf32> {
  %0 = vo.matmul %x, %w : tensor<2x8xf32>, tensor<4x8xf32>
  return %0 : tensor<2x8xf32>
}
