// RUN: veomni-opt %s -split-input-file -vo-autodiff | FileCheck %s
// One case per gradient rule: each differentiates a tiny loss through one
// op and checks the backward ops its rule emits. (Numerical correctness of
// every rule is checked against finite differences in the unit tests.)

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// add_broadcast
// CHECK: vo.broadcast_to
// CHECK: vo.reduce_sum %{{.*}} axes = [0]
// CHECK: vo.reshape %{{.*}} to [3]
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.add %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// sub_broadcast
// CHECK: vo.neg
// CHECK: vo.reduce_sum %{{.*}} axes = [0]
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.sub %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// mul_broadcast
// CHECK: %[[DY:[0-9]+]] = vo.broadcast_to
// CHECK: vo.mul %[[DY]], %{{[0-9]+}} : tensor<2x3xf32>, tensor<3xf32>
// CHECK: vo.mul %[[DY]], %{{[0-9]+}} : tensor<2x3xf32>, tensor<2x3xf32>
// CHECK: vo.reduce_sum %{{.*}} axes = [0]
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.mul %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// div_broadcast
// CHECK: vo.div %{{.*}}, %{{.*}} : tensor<2x3xf32>, tensor<3xf32>
// CHECK: vo.div %{{.*}}, %{{.*}} : tensor<2x3xf32>, tensor<3xf32>
// CHECK: vo.neg
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.div %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// pow_broadcast
// CHECK: vo.sub %{{.*}}, %{{.*}} : tensor<3xf32>, tensor<f32>
// CHECK: vo.pow
// CHECK: vo.log
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.pow %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// maximum_broadcast
// CHECK: vo.cmp ge
// CHECK: vo.select
// CHECK: vo.select
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.maximum %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// minimum_broadcast
// CHECK: vo.cmp le
// CHECK: vo.select
// CHECK: vo.select
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.minimum %a, %b : tensor<2x3xf32>, tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// neg
// CHECK: vo.neg %{{.*}} : tensor<2x3xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.neg %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// exp
// CHECK: %[[Y:[0-9]+]] = vo.exp
// CHECK: vo.mul %{{.*}}, %[[Y]]
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.exp %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// log
// CHECK: vo.div %{{.*}}, %{{.*}} : tensor<2x3xf32>, tensor<2x3xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.log %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// sqrt
// CHECK: vo.constant dense<2.000000e+00>
// CHECK: vo.div
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.sqrt %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// rsqrt
// CHECK: vo.constant dense<-5.000000e-01>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.rsqrt %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// reciprocal
// CHECK: vo.mul
// CHECK: vo.neg
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.reciprocal %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// tanh
// CHECK: vo.constant dense<1.000000e+00>
// CHECK: vo.sub
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.tanh %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// erf
// CHECK-DAG: vo.constant dense<1.12837
// CHECK-DAG: vo.exp
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.erf %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// cos
// CHECK: vo.sin
// CHECK: vo.neg
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.cos %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// sin
// CHECK: vo.cos
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.sin %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// sigmoid
// CHECK: vo.sub
// CHECK: vo.mul
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.sigmoid %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// silu
// CHECK: vo.sigmoid
// CHECK: vo.sub
// CHECK: vo.add
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.silu %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// gelu
// CHECK: vo.erf
// CHECK: vo.exp
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.gelu %a : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// gelu_tanh
// CHECK-DAG: vo.tanh
// CHECK-DAG: vo.constant dense<1.34145
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.gelu %a approximate = tanh : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// cast
// CHECK: vo.cast %{{.*}} : tensor<2x3xbf16> to f32
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.cast %a : tensor<2x3xf32> to bf16
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xbf16>
  %r = vo.cast %l : tensor<bf16> to f32
  return %r : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// select
// CHECK: %[[Z:[0-9]+]] = vo.constant dense<0.000000e+00> : tensor<f32>
// CHECK: vo.select %{{.*}}, %{{.*}}, %[[Z]]
// CHECK: vo.select %{{.*}}, %[[Z]], %{{.*}}
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<2x3xf32>
  %c = vo.cmp lt, %a, %b : tensor<2x3xf32>, tensor<2x3xf32>
  %y = vo.select %c, %a, %b : tensor<2x3xi1>, tensor<2x3xf32>, tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @w : tensor<4x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// matmul_linear
// CHECK: vo.reshape %{{.*}} to [10, 3]
// CHECK: vo.reshape %{{.*}} to [10, 4]
// CHECK: vo.matmul %{{.*}}, %{{.*}} transpose_lhs : tensor<10x4xf32>, tensor<10x3xf32>
func.func @forward() -> tensor<f32> {
  %w = vo.param @w : tensor<4x3xf32>
  %x = vo.constant dense<1.0> : tensor<2x5x3xf32>
  %y = vo.matmul %x, %w transpose_rhs : tensor<2x5x3xf32>, tensor<4x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2] : tensor<2x5x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// matmul_plain
// CHECK: vo.matmul %{{.*}}, %{{.*}} transpose_rhs : tensor<2x4xf32>, tensor<3x4xf32>
// CHECK: vo.matmul %{{.*}}, %{{.*}} transpose_lhs : tensor<2x3xf32>, tensor<2x4xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<3x4xf32>
  %y = vo.matmul %a, %b : tensor<2x3xf32>, tensor<3x4xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<3x2xf32> init #vo.init<zeros>
vo.parameter @b : tensor<3x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// matmul_transposed_lhs
// CHECK: vo.matmul %{{.*}}, %{{.*}} transpose_rhs : tensor<3x4xf32>, tensor<2x4xf32>
// CHECK: vo.matmul %{{.*}}, %{{.*}} : tensor<3x2xf32>, tensor<2x4xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<3x2xf32>
  %b = vo.param @b : tensor<3x4xf32>
  %y = vo.matmul %a, %b transpose_lhs : tensor<3x2xf32>, tensor<3x4xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// reduce_sum
// CHECK: vo.reshape %{{.*}} to [1, 1]
// CHECK: vo.broadcast_to %{{.*}} to [2, 3]
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %l = vo.reduce_sum %a axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// reduce_mean
// CHECK: vo.constant dense<0.1666
// CHECK: vo.broadcast_to
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %l = vo.reduce_mean %a axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// reduce_max
// CHECK: vo.cmp eq
// CHECK: vo.reduce_sum %{{.*}} axes = [1] keep_dims
// CHECK: vo.div
// CHECK: vo.select
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %m = vo.reduce_max %a axes = [1] keep_dims : tensor<2x3xf32>
  %l = vo.reduce_sum %m axes = [0, 1] : tensor<2x1xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// softmax
// CHECK: vo.reduce_sum %{{.*}} axes = [1] keep_dims
// CHECK: vo.sub
// CHECK: vo.mul
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.softmax %a axis = 1 : tensor<2x3xf32>
  %z = vo.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32>
  %l = vo.reduce_sum %z axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// log_softmax
// CHECK: vo.reduce_sum %{{.*}} axes = [1] keep_dims
// CHECK: vo.exp
// CHECK: vo.sub
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.log_softmax %a axis = 1 : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// reshape
// CHECK: vo.reshape %{{.*}} to [2, 3] : tensor<6xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %y = vo.reshape %a to [6] : tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0] : tensor<6xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// transpose
// CHECK: vo.transpose %{{.*}} perm = [2, 0, 1] : tensor<3x4x2xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3x4xf32>
  %y = vo.transpose %a perm = [1, 2, 0] : tensor<2x3x4xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2] : tensor<3x4x2xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// broadcast_to
// CHECK: vo.reduce_sum %{{.*}} axes = [0] : tensor<2x3xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<3xf32>
  %y = vo.broadcast_to %a to [2, 3] : tensor<3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<4x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// slice
// CHECK: vo.constant dense<0.000000e+00> : tensor<1x3xf32>
// CHECK: vo.concat %{{.*}}, %{{.*}}, %{{.*}} axis = 0 : tensor<1x3xf32>, tensor<2x3xf32>, tensor<1x3xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<4x3xf32>
  %y = vo.slice %a start = [1, 0] limit = [3, 3] stride = [1, 1] : tensor<4x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @a : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @b : tensor<2x1xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// concat
// CHECK: vo.slice %{{.*}} start = [0, 0] limit = [2, 3] stride = [1, 1] : tensor<2x4xf32>
// CHECK: vo.slice %{{.*}} start = [0, 3] limit = [2, 4] stride = [1, 1] : tensor<2x4xf32>
func.func @forward() -> tensor<f32> {
  %a = vo.param @a : tensor<2x3xf32>
  %b = vo.param @b : tensor<2x1xf32>
  %y = vo.concat %a, %b axis = 1 : tensor<2x3xf32>, tensor<2x1xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @t : tensor<16x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// embedding
// CHECK: vo.embedding_grad %{{.*}}, %{{.*}} vocab = 16 : tensor<1x3xi64>, tensor<1x3x4xf32>
func.func @forward() -> tensor<f32> {
  %t = vo.param @t : tensor<16x4xf32>
  %ids = vo.constant dense<[[1, 2, 3]]> : tensor<1x3xi64>
  %y = vo.embedding %t, %ids : tensor<16x4xf32>, tensor<1x3xi64>
  %l = vo.reduce_sum %y axes = [0, 1, 2] : tensor<1x3x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @x : tensor<2x8xf32> init #vo.init<zeros>
vo.parameter @w : tensor<8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// rms_norm
// CHECK: %{{.*}}, %{{.*}} = vo.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} epsilon = {{.*}} : tensor<2x8xf32>, tensor<8xf32>
func.func @forward() -> tensor<f32> {
  %x = vo.param @x : tensor<2x8xf32>
  %w = vo.param @w : tensor<8xf32>
  %y = vo.rms_norm %x, %w epsilon = 1.0e-6 : tensor<2x8xf32>, tensor<8xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x8xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @x : tensor<1x2x4x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// rope
// CHECK: vo.rope_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x4x8xf32>, tensor<1x1x4x8xf32>
func.func @forward() -> tensor<f32> {
  %x = vo.param @x : tensor<1x2x4x8xf32>
  %c = vo.constant dense<0.5> : tensor<1x1x4x8xf32>
  %y = vo.rope %x, %c, %c : tensor<1x2x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2, 3] : tensor<1x2x4x8xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @g : tensor<2x3xf32> init #vo.init<zeros>
vo.parameter @u : tensor<2x3xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// swiglu
// CHECK: %[[DG:[a-z_0-9]+]], %[[DU:[a-z_0-9]+]] = vo.swiglu_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x3xf32>, tensor<2x3xf32>
// CHECK: return %{{.*}}, %[[DG]], %[[DU]]
func.func @forward() -> tensor<f32> {
  %g = vo.param @g : tensor<2x3xf32>
  %u = vo.param @u : tensor<2x3xf32>
  %y = vo.swiglu %g, %u : tensor<2x3xf32>, tensor<2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<2x3xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @q : tensor<1x4x6x8xf32> init #vo.init<zeros>
vo.parameter @k : tensor<1x2x6x8xf32> init #vo.init<zeros>
vo.parameter @v : tensor<1x2x6x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// attention
// CHECK: %[[DQ:[a-z_0-9]+]], %[[DK:[a-z_0-9]+]], %[[DV:[a-z_0-9]+]] = vo.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} scale = 2.500000e-01 causal
// CHECK: return %{{.*}}, %[[DQ]], %[[DK]], %[[DV]]
func.func @forward() -> tensor<f32> {
  %q = vo.param @q : tensor<1x4x6x8xf32>
  %k = vo.param @k : tensor<1x2x6x8xf32>
  %v = vo.param @v : tensor<1x2x6x8xf32>
  %y = vo.attention %q, %k, %v scale = 0.25 causal : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2, 3] : tensor<1x4x6x8xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @x : tensor<4x16xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @forward_backward
// cross_entropy
// CHECK: vo.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<4x16xf32>, tensor<4xi64>, tensor<f32>
func.func @forward() -> tensor<f32> {
  %x = vo.param @x : tensor<4x16xf32>
  %labels = vo.constant dense<[1, 2, -100, 3]> : tensor<4xi64>
  %l = vo.cross_entropy %x, %labels : tensor<4x16xf32>, tensor<4xi64>
  return %l : tensor<f32>
}
