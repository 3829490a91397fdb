// RUN: veomni-opt %s -split-input-file -vo-raise | FileCheck %s

// The ONNX exporter's eager attention with grouped-query kv heads: repeat_kv
// as reshape/broadcast/reshape, q @ k^T * scale, a constant additive causal
// mask holding the float32 minimum, softmax, @ v.
// CHECK-LABEL: func @gqa_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x4x8xf32>, %[[K:.*]]: tensor<1x2x4x8xf32>, %[[V:.*]]: tensor<1x2x4x8xf32>)
// CHECK-NEXT: %[[A:.*]] = vo.attention %[[Q]], %[[K]], %[[V]] scale = 3.750000e-01 causal
// CHECK-NEXT: return %[[A]]
func.func @gqa_causal(%q: tensor<1x4x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x4x4x8xf32> {
  %mask = vo.constant dense<[[[[0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
                               [0.0, 0.0, -3.40282347E+38, -3.40282347E+38],
                               [0.0, 0.0, 0.0, -3.40282347E+38],
                               [0.0, 0.0, 0.0, 0.0]]]]> : tensor<1x1x4x4xf32>
  %scale = vo.constant dense<0.375> : tensor<f32>
  %k1 = vo.reshape %k to [1, 2, 1, 4, 8] : tensor<1x2x4x8xf32>
  %k2 = vo.broadcast_to %k1 to [1, 2, 2, 4, 8] : tensor<1x2x1x4x8xf32>
  %k3 = vo.reshape %k2 to [1, 4, 4, 8] : tensor<1x2x2x4x8xf32>
  %v1 = vo.reshape %v to [1, 2, 1, 4, 8] : tensor<1x2x4x8xf32>
  %v2 = vo.broadcast_to %v1 to [1, 2, 2, 4, 8] : tensor<1x2x1x4x8xf32>
  %v3 = vo.reshape %v2 to [1, 4, 4, 8] : tensor<1x2x2x4x8xf32>
  %s = vo.matmul %q, %k3 transpose_rhs : tensor<1x4x4x8xf32>, tensor<1x4x4x8xf32>
  %s1 = vo.mul %s, %scale : tensor<1x4x4x4xf32>, tensor<f32>
  %s2 = vo.add %s1, %mask : tensor<1x4x4x4xf32>, tensor<1x1x4x4xf32>
  %p = vo.softmax %s2 axis = 3 : tensor<1x4x4x4xf32>
  %o = vo.matmul %p, %v3 : tensor<1x4x4x4xf32>, tensor<1x4x4x8xf32>
  return %o : tensor<1x4x4x8xf32>
}

// -----

// Scale split between q and the scores (SDPA's decomposition), no mask, and
// the isnan guard on the probabilities.
// CHECK-LABEL: func @split_scale_no_mask
// CHECK: vo.attention %{{.*}}, %{{.*}}, %{{.*}} scale = 2.500000e-01 :
// CHECK-NOT: causal
// CHECK-NOT: vo.softmax
func.func @split_scale_no_mask(%q: tensor<2x2x3x4xf32>, %k: tensor<2x2x5x4xf32>, %v: tensor<2x2x5x6xf32>) -> tensor<2x2x3x6xf32> {
  %half = vo.constant dense<0.5> : tensor<f32>
  %zero = vo.constant dense<0.0> : tensor<f32>
  %two = vo.constant dense<2.0> : tensor<f32>
  %qs = vo.mul %q, %half : tensor<2x2x3x4xf32>, tensor<f32>
  %s = vo.matmul %qs, %k transpose_rhs : tensor<2x2x3x4xf32>, tensor<2x2x5x4xf32>
  %s1 = vo.div %s, %two : tensor<2x2x3x5xf32>, tensor<f32>
  %p = vo.softmax %s1 axis = 3 : tensor<2x2x3x5xf32>
  %nan = vo.is_nan %p : tensor<2x2x3x5xf32>
  %p1 = vo.select %nan, %zero, %p : tensor<2x2x3x5xi1>, tensor<f32>, tensor<2x2x3x5xf32>
  %o = vo.matmul %p1, %v : tensor<2x2x3x5xf32>, tensor<2x2x5x6xf32>
  return %o : tensor<2x2x3x6xf32>
}

// -----

// A mask that also hides the diagonal is not causal attention.
// CHECK-LABEL: func @mask_hides_diagonal
// CHECK-NOT: vo.attention
func.func @mask_hides_diagonal(%q: tensor<1x1x2x8xf32>, %k: tensor<1x1x2x8xf32>) -> tensor<1x1x2x8xf32> {
  %mask = vo.constant dense<[[[[-3.40282347E+38, -3.40282347E+38], [0.0, -3.40282347E+38]]]]> : tensor<1x1x2x2xf32>
  %s = vo.matmul %q, %k transpose_rhs : tensor<1x1x2x8xf32>, tensor<1x1x2x8xf32>
  %s2 = vo.add %s, %mask : tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>
  %p = vo.softmax %s2 axis = 3 : tensor<1x1x2x2xf32>
  %o = vo.matmul %p, %k : tensor<1x1x2x2xf32>, tensor<1x1x2x8xf32>
  return %o : tensor<1x1x2x8xf32>
}

// -----

// A mask computed at run time (padding, say) is not absorbed.
// CHECK-LABEL: func @runtime_mask
// CHECK-NOT: vo.attention
func.func @runtime_mask(%q: tensor<1x1x2x8xf32>, %k: tensor<1x1x2x8xf32>, %mask: tensor<1x1x2x2xf32>) -> tensor<1x1x2x8xf32> {
  %s = vo.matmul %q, %k transpose_rhs : tensor<1x1x2x8xf32>, tensor<1x1x2x8xf32>
  %s2 = vo.add %s, %mask : tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>
  %p = vo.softmax %s2 axis = 3 : tensor<1x1x2x2xf32>
  %o = vo.matmul %p, %k : tensor<1x1x2x2xf32>, tensor<1x1x2x8xf32>
  return %o : tensor<1x1x2x8xf32>
}

// -----

// Softmax over the query axis is not attention.
// CHECK-LABEL: func @softmax_wrong_axis
// CHECK-NOT: vo.attention
func.func @softmax_wrong_axis(%q: tensor<1x1x2x8xf32>, %k: tensor<1x1x2x8xf32>) -> tensor<1x1x2x8xf32> {
  %s = vo.matmul %q, %k transpose_rhs : tensor<1x1x2x8xf32>, tensor<1x1x2x8xf32>
  %p = vo.softmax %s axis = 2 : tensor<1x1x2x2xf32>
  %o = vo.matmul %p, %k : tensor<1x1x2x2xf32>, tensor<1x1x2x8xf32>
  return %o : tensor<1x1x2x8xf32>
}
