// RUN: veomni-opt %s -split-input-file -vo-raise | FileCheck %s

// CHECK-LABEL: func @swiglu
// CHECK-SAME: (%[[G:.*]]: tensor<2x16xf32>, %[[U:.*]]: tensor<2x16xf32>)
// CHECK-NEXT: %[[R:.*]] = vo.swiglu %[[G]], %[[U]]
// CHECK-NEXT: return %[[R]]
func.func @swiglu(%gate: tensor<2x16xf32>, %up: tensor<2x16xf32>) -> tensor<2x16xf32> {
  %0 = vo.sigmoid %gate : tensor<2x16xf32>
  %1 = vo.mul %gate, %0 : tensor<2x16xf32>, tensor<2x16xf32>
  %2 = vo.mul %1, %up : tensor<2x16xf32>, tensor<2x16xf32>
  return %2 : tensor<2x16xf32>
}

// -----

// A SiLU that is not gating anything stays a SiLU.
// CHECK-LABEL: func @silu_alone
// CHECK: vo.silu
// CHECK-NOT: vo.swiglu
func.func @silu_alone(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
  %0 = vo.sigmoid %x : tensor<2x16xf32>
  %1 = vo.mul %0, %x : tensor<2x16xf32>, tensor<2x16xf32>
  return %1 : tensor<2x16xf32>
}

// -----

// x * sigmoid(y) is a gate, not a SiLU.
// CHECK-LABEL: func @sigmoid_of_other
// CHECK: vo.sigmoid
// CHECK-NOT: vo.silu
func.func @sigmoid_of_other(%x: tensor<2x16xf32>, %y: tensor<2x16xf32>) -> tensor<2x16xf32> {
  %0 = vo.sigmoid %y : tensor<2x16xf32>
  %1 = vo.mul %x, %0 : tensor<2x16xf32>, tensor<2x16xf32>
  return %1 : tensor<2x16xf32>
}
