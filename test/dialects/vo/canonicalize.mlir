// RUN: veomni-opt %s -split-input-file -canonicalize | FileCheck %s

// CHECK-LABEL: func @linear_transpose_into_flag
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<4x8xf32>)
// CHECK: vo.matmul %[[X]], %[[W]] transpose_rhs : tensor<2x8xf32>, tensor<4x8xf32>
// CHECK-NOT: vo.transpose
func.func @linear_transpose_into_flag(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>) -> tensor<2x4xf32> {
  %t = vo.transpose %w perm = [1, 0] : tensor<4x8xf32>
  %0 = vo.matmul %x, %t : tensor<2x8xf32>, tensor<8x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// A transposed operand of an already transposed matmul cancels the flag.
// CHECK-LABEL: func @toggles_flag
// CHECK: vo.matmul %{{.*}}, %{{.*}} : tensor<2x3x8xf32>, tensor<2x8x5xf32>
func.func @toggles_flag(%a: tensor<2x3x8xf32>, %b: tensor<2x8x5xf32>) -> tensor<2x3x5xf32> {
  %t = vo.transpose %b perm = [0, 2, 1] : tensor<2x8x5xf32>
  %0 = vo.matmul %a, %t transpose_rhs : tensor<2x3x8xf32>, tensor<2x5x8xf32>
  return %0 : tensor<2x3x5xf32>
}

// -----

// Only a swap of the last two dims folds into the flags.
// CHECK-LABEL: func @batch_transpose_stays
// CHECK: vo.transpose
// CHECK: vo.matmul
func.func @batch_transpose_stays(%a: tensor<4x3x8xf32>, %b: tensor<8x4x5xf32>) -> tensor<4x3x5xf32> {
  %t = vo.transpose %b perm = [1, 0, 2] : tensor<8x4x5xf32>
  %0 = vo.matmul %a, %t : tensor<4x3x8xf32>, tensor<4x8x5xf32>
  return %0 : tensor<4x3x5xf32>
}

// -----

// CHECK-LABEL: func @shape_identities
// CHECK-SAME: (%[[X:.*]]: tensor<2x3xf32>)
// CHECK-NEXT: return %[[X]], %[[X]], %[[X]], %[[X]], %[[X]], %[[X]]
func.func @shape_identities(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
  %0 = vo.reshape %x to [2, 3] : tensor<2x3xf32>
  %1 = vo.transpose %x perm = [0, 1] : tensor<2x3xf32>
  %2 = vo.slice %x start = [0, 0] limit = [2, 3] stride = [1, 1] : tensor<2x3xf32>
  %3 = vo.concat %x axis = 0 : tensor<2x3xf32>
  %4 = vo.broadcast_to %x to [2, 3] : tensor<2x3xf32>
  %5 = vo.cast %x : tensor<2x3xf32> to f32
  return %0, %1, %2, %3, %4, %5 : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @compose_chains
// CHECK-NEXT: %[[R:.*]] = vo.reshape %{{.*}} to [3, 4]
// CHECK-NEXT: %[[T:.*]] = vo.transpose %{{.*}} perm = [2, 0, 1]
// CHECK-NEXT: return %[[R]], %[[T]]
func.func @compose_chains(%x: tensor<2x6xf32>, %y: tensor<2x3x4xf32>) -> (tensor<3x4xf32>, tensor<4x2x3xf32>) {
  %0 = vo.reshape %x to [12] : tensor<2x6xf32>
  %1 = vo.reshape %0 to [3, 4] : tensor<12xf32>
  %2 = vo.transpose %y perm = [1, 0, 2] : tensor<2x3x4xf32>
  %3 = vo.transpose %2 perm = [2, 1, 0] : tensor<3x2x4xf32>
  return %1, %3 : tensor<3x4xf32>, tensor<4x2x3xf32>
}

// -----

// CHECK-LABEL: func @splat_constants_fold
// CHECK-NEXT: %[[C:.*]] = vo.constant dense<2.000000e+00> : tensor<4x3xf32>
// CHECK-NEXT: return %[[C]]
func.func @splat_constants_fold() -> tensor<4x3xf32> {
  %c = vo.constant dense<2.0> : tensor<3xf32>
  %0 = vo.broadcast_to %c to [4, 3] : tensor<3xf32>
  return %0 : tensor<4x3xf32>
}

// -----

// A narrowing cast moves above the data movement that only it reads (FSDP
// then gathers bf16): the gather, slice and reshape carry bf16.
// CHECK-LABEL: func.func @hoist_narrowing_cast
// CHECK-NEXT:  %[[C:.*]] = vo.cast %arg0 : tensor<8xf32> to bf16
// CHECK-NEXT:  %[[G:.*]] = vo.all_gather %[[C]] over ["fsdp"] group_size = 2 dim = 0 : tensor<8xbf16>
// CHECK-NEXT:  %[[S:.*]] = vo.slice %[[G]] start = [0] limit = [12] stride = [1] : tensor<16xbf16>
// CHECK-NEXT:  %[[R:.*]] = vo.reshape %[[S]] to [3, 4] : tensor<12xbf16>
// CHECK-NEXT:  return %[[R]] : tensor<3x4xbf16>
func.func @hoist_narrowing_cast(%shard: tensor<8xf32>) -> tensor<3x4xbf16> {
  %g = vo.all_gather %shard over ["fsdp"] group_size = 2 dim = 0 : tensor<8xf32>
  %s = vo.slice %g start = [0] limit = [12] stride = [1] : tensor<16xf32>
  %r = vo.reshape %s to [3, 4] : tensor<12xf32>
  %c = vo.cast %r : tensor<3x4xf32> to bf16
  return %c : tensor<3x4xbf16>
}

// -----

// Not when the movement has another reader (both widths would move), nor for
// a widening cast.
// CHECK-LABEL: func.func @keep_cast
// CHECK:       %[[T:.*]] = vo.transpose %arg0
// CHECK-NEXT:  vo.cast %[[T]] : tensor<3x2xf32> to bf16
// CHECK:       %[[W:.*]] = vo.reshape %arg1
// CHECK-NEXT:  vo.cast %[[W]] : tensor<4xbf16> to f32
func.func @keep_cast(%x: tensor<2x3xf32>, %y: tensor<2x2xbf16>)
    -> (tensor<3x2xbf16>, tensor<3x2xf32>, tensor<4xf32>) {
  %t = vo.transpose %x perm = [1, 0] : tensor<2x3xf32>
  %c = vo.cast %t : tensor<3x2xf32> to bf16
  %w = vo.reshape %y to [4] : tensor<2x2xbf16>
  %d = vo.cast %w : tensor<4xbf16> to f32
  return %c, %t, %d : tensor<3x2xbf16>, tensor<3x2xf32>, tensor<4xf32>
}

// -----

// Nor above a slice that keeps less than half its input (a rank's window):
// rounding it after reads fewer elements.
// CHECK-LABEL: func.func @keep_cast_after_narrow_slice
// CHECK:       %[[S:.*]] = vo.slice %arg0
// CHECK-NEXT:  vo.cast %[[S]] : tensor<3xf32> to bf16
func.func @keep_cast_after_narrow_slice(%x: tensor<8xf32>) -> tensor<3xbf16> {
  %s = vo.slice %x start = [0] limit = [3] stride = [1] : tensor<8xf32>
  %c = vo.cast %s : tensor<3xf32> to bf16
  return %c : tensor<3xbf16>
}
