// RUN: veomni-opt %s -split-input-file -vo-raise | FileCheck %s

// CHECK-LABEL: func @rotate_half
// CHECK-SAME: (%[[X:.*]]: tensor<2x4x8x16xf32>, %[[C:.*]]: tensor<1x1x8x16xf32>, %[[S:.*]]: tensor<1x1x8x16xf32>)
// CHECK-NEXT: %[[R:.*]] = vo.rope %[[X]], %[[C]], %[[S]]
// CHECK-NEXT: return %[[R]]
func.func @rotate_half(%x: tensor<2x4x8x16xf32>, %cos: tensor<1x1x8x16xf32>, %sin: tensor<1x1x8x16xf32>) -> tensor<2x4x8x16xf32> {
  %0 = vo.mul %x, %cos : tensor<2x4x8x16xf32>, tensor<1x1x8x16xf32>
  %1 = vo.slice %x start = [0, 0, 0, 0] limit = [2, 4, 8, 8] stride = [1, 1, 1, 1] : tensor<2x4x8x16xf32>
  %2 = vo.slice %x start = [0, 0, 0, 8] limit = [2, 4, 8, 16] stride = [1, 1, 1, 1] : tensor<2x4x8x16xf32>
  %3 = vo.neg %2 : tensor<2x4x8x8xf32>
  %4 = vo.concat %3, %1 axis = 3 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32>
  %5 = vo.mul %4, %sin : tensor<2x4x8x16xf32>, tensor<1x1x8x16xf32>
  %6 = vo.add %0, %5 : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>
  return %6 : tensor<2x4x8x16xf32>
}

// -----

// concat(x1, -x2) rotates the other way: not the rotary embedding vo.rope
// computes, so it stays.
// CHECK-LABEL: func @rotated_the_other_way
// CHECK-NOT: vo.rope
func.func @rotated_the_other_way(%x: tensor<2x4x8x16xf32>, %cos: tensor<1x1x8x16xf32>, %sin: tensor<1x1x8x16xf32>) -> tensor<2x4x8x16xf32> {
  %0 = vo.mul %x, %cos : tensor<2x4x8x16xf32>, tensor<1x1x8x16xf32>
  %1 = vo.slice %x start = [0, 0, 0, 0] limit = [2, 4, 8, 8] stride = [1, 1, 1, 1] : tensor<2x4x8x16xf32>
  %2 = vo.slice %x start = [0, 0, 0, 8] limit = [2, 4, 8, 16] stride = [1, 1, 1, 1] : tensor<2x4x8x16xf32>
  %3 = vo.neg %2 : tensor<2x4x8x8xf32>
  %4 = vo.concat %1, %3 axis = 3 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32>
  %5 = vo.mul %4, %sin : tensor<2x4x8x16xf32>, tensor<1x1x8x16xf32>
  %6 = vo.add %0, %5 : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>
  return %6 : tensor<2x4x8x16xf32>
}

// -----

// The cos term multiplies another tensor than the rotated one.
// CHECK-LABEL: func @different_tensors
// CHECK-NOT: vo.rope
func.func @different_tensors(%x: tensor<1x1x2x4xf32>, %y: tensor<1x1x2x4xf32>, %cos: tensor<1x1x2x4xf32>, %sin: tensor<1x1x2x4xf32>) -> tensor<1x1x2x4xf32> {
  %0 = vo.mul %y, %cos : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  %1 = vo.slice %x start = [0, 0, 0, 0] limit = [1, 1, 2, 2] stride = [1, 1, 1, 1] : tensor<1x1x2x4xf32>
  %2 = vo.slice %x start = [0, 0, 0, 2] limit = [1, 1, 2, 4] stride = [1, 1, 1, 1] : tensor<1x1x2x4xf32>
  %3 = vo.neg %2 : tensor<1x1x2x2xf32>
  %4 = vo.concat %3, %1 axis = 3 : tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>
  %5 = vo.mul %4, %sin : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  %6 = vo.add %0, %5 : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  return %6 : tensor<1x1x2x4xf32>
}
