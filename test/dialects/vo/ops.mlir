// RUN: veomni-opt %s | veomni-opt | FileCheck %s
// Every vo op parses, infers its result type, prints, and parses again.

// CHECK: vo.parameter @embed : tensor<16x8xf32> init #vo.init<normal, std = 2.000000e-02>
// CHECK: vo.parameter @norm : tensor<8xf32> = dense<1.000000e+00>
// CHECK: vo.parameter @bias : tensor<8xbf16> init #vo.init<zeros>
vo.parameter @embed : tensor<16x8xf32> init #vo.init<normal, std = 0.02>
vo.parameter @norm : tensor<8xf32> = dense<1.0>
vo.parameter @bias : tensor<8xbf16> init #vo.init<zeros>

// CHECK-LABEL: func @params_and_constants
func.func @params_and_constants() -> (tensor<16x8xf32>, tensor<2xi64>) {
  // CHECK: vo.param @embed : tensor<16x8xf32>
  %0 = vo.param @embed : tensor<16x8xf32>
  // CHECK: vo.constant dense<[1, 2]> : tensor<2xi64>
  %1 = vo.constant dense<[1, 2]> : tensor<2xi64>
  return %0, %1 : tensor<16x8xf32>, tensor<2xi64>
}

// CHECK-LABEL: func @elementwise
func.func @elementwise(%a: tensor<2x3xf32>, %b: tensor<3xf32>, %i: tensor<2x3xi64>) {
  // CHECK: vo.add {{.*}} : tensor<2x3xf32>, tensor<3xf32>
  %0 = vo.add %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.sub
  %1 = vo.sub %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.mul
  %2 = vo.mul %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.div
  %3 = vo.div %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.pow
  %4 = vo.pow %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.maximum
  %5 = vo.maximum %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.minimum
  %6 = vo.minimum %i, %i : tensor<2x3xi64>, tensor<2x3xi64>
  // CHECK: vo.cmp lt, {{.*}} : tensor<2x3xf32>, tensor<3xf32>
  %7 = vo.cmp lt, %a, %b : tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.select {{.*}} : tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>
  %8 = vo.select %7, %a, %b : tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>
  // CHECK: vo.neg {{.*}} : tensor<2x3xi64>
  %9 = vo.neg %i : tensor<2x3xi64>
  // CHECK: vo.exp
  %10 = vo.exp %a : tensor<2x3xf32>
  // CHECK: vo.log
  %11 = vo.log %a : tensor<2x3xf32>
  // CHECK: vo.sqrt
  %12 = vo.sqrt %a : tensor<2x3xf32>
  // CHECK: vo.rsqrt
  %13 = vo.rsqrt %a : tensor<2x3xf32>
  // CHECK: vo.reciprocal
  %14 = vo.reciprocal %a : tensor<2x3xf32>
  // CHECK: vo.tanh
  %15 = vo.tanh %a : tensor<2x3xf32>
  // CHECK: vo.erf
  %16 = vo.erf %a : tensor<2x3xf32>
  // CHECK: vo.cos
  %17 = vo.cos %a : tensor<2x3xf32>
  // CHECK: vo.sin
  %18 = vo.sin %a : tensor<2x3xf32>
  // CHECK: vo.sigmoid
  %19 = vo.sigmoid %a : tensor<2x3xf32>
  // CHECK: vo.silu
  %20 = vo.silu %a : tensor<2x3xf32>
  // CHECK: vo.gelu %{{.*}} : tensor<2x3xf32>
  %21 = vo.gelu %a : tensor<2x3xf32>
  // CHECK: vo.gelu %{{.*}} approximate = tanh : tensor<2x3xf32>
  %22 = vo.gelu %a approximate = tanh : tensor<2x3xf32>
  // CHECK: vo.is_nan
  %23 = vo.is_nan %a : tensor<2x3xf32>
  // CHECK: vo.cast {{.*}} : tensor<2x3xf32> to bf16
  %24 = vo.cast %a : tensor<2x3xf32> to bf16
  return
}

// CHECK-LABEL: func @contractions
func.func @contractions(%x: tensor<2x5x8xf32>, %w: tensor<4x8xf32>, %b: tensor<3x2x5x8xf32>) {
  // CHECK: vo.matmul {{.*}} transpose_rhs : tensor<2x5x8xf32>, tensor<4x8xf32>
  %0 = vo.matmul %x, %w transpose_rhs : tensor<2x5x8xf32>, tensor<4x8xf32>
  // CHECK: vo.matmul {{.*}} transpose_lhs : tensor<2x5x8xf32>, tensor<3x2x5x8xf32>
  %1 = vo.matmul %x, %b transpose_lhs : tensor<2x5x8xf32>, tensor<3x2x5x8xf32>
  // bf16 operands, f32 result (mixed precision).
  %xb = vo.cast %x : tensor<2x5x8xf32> to bf16
  %wb = vo.cast %w : tensor<4x8xf32> to bf16
  // CHECK: vo.matmul {{.*}} transpose_rhs f32_result : tensor<2x5x8xbf16>, tensor<4x8xbf16>
  %mixed = vo.matmul %xb, %wb transpose_rhs f32_result : tensor<2x5x8xbf16>, tensor<4x8xbf16>
  %mixed_f32 = vo.exp %mixed : tensor<2x5x4xf32>
  // CHECK: vo.reduce_sum {{.*}} axes = [0, 2] : tensor<2x5x8xf32>
  %2 = vo.reduce_sum %x axes = [0, 2] : tensor<2x5x8xf32>
  // CHECK: vo.reduce_mean {{.*}} axes = [2] keep_dims : tensor<2x5x8xf32>
  %3 = vo.reduce_mean %x axes = [2] keep_dims : tensor<2x5x8xf32>
  // CHECK: vo.reduce_sum_squares {{.*}} axes = [0, 1, 2] : tensor<2x5x8xf32>
  %sq = vo.reduce_sum_squares %x axes = [0, 1, 2] : tensor<2x5x8xf32>
  // CHECK: vo.reduce_max
  %4 = vo.reduce_max %x axes = [1] : tensor<2x5x8xf32>
  // CHECK: vo.softmax {{.*}} axis = 2
  %5 = vo.softmax %x axis = 2 : tensor<2x5x8xf32>
  // CHECK: vo.log_softmax {{.*}} axis = 1
  %6 = vo.log_softmax %x axis = 1 : tensor<2x5x8xf32>
  return
}

// CHECK-LABEL: func @shapes
func.func @shapes(%x: tensor<2x6xf32>, %y: tensor<2x2xf32>, %s: tensor<1x6xf32>)
    -> (tensor<3x4xf32>, tensor<6x2xf32>, tensor<2x2xf32>, tensor<2x8xf32>, tensor<4x2x6xf32>) {
  // CHECK: vo.reshape {{.*}} to [3, 4] : tensor<2x6xf32>
  %0 = vo.reshape %x to [3, 4] : tensor<2x6xf32>
  // CHECK: vo.transpose {{.*}} perm = [1, 0] : tensor<2x6xf32>
  %1 = vo.transpose %x perm = [1, 0] : tensor<2x6xf32>
  // CHECK: vo.slice {{.*}} start = [0, 1] limit = [2, 6] stride = [1, 3] : tensor<2x6xf32>
  %2 = vo.slice %x start = [0, 1] limit = [2, 6] stride = [1, 3] : tensor<2x6xf32>
  // CHECK: vo.concat {{.*}} axis = 1 : tensor<2x6xf32>, tensor<2x2xf32>
  %3 = vo.concat %x, %y axis = 1 : tensor<2x6xf32>, tensor<2x2xf32>
  // CHECK: vo.broadcast_to {{.*}} to [4, 2, 6] : tensor<1x6xf32>
  %4 = vo.broadcast_to %s to [4, 2, 6] : tensor<1x6xf32>
  return %0, %1, %2, %3, %4 : tensor<3x4xf32>, tensor<6x2xf32>, tensor<2x2xf32>, tensor<2x8xf32>, tensor<4x2x6xf32>
}

// CHECK-LABEL: func @model_ops
func.func @model_ops(%table: tensor<16x8xf32>, %ids: tensor<2x4xi64>, %w: tensor<8xf32>,
                     %q: tensor<1x4x6x8xf32>, %kv: tensor<1x2x6x8xf32>,
                     %cos: tensor<1x1x6x8xf32>, %sin: tensor<1x1x6x8xf32>,
                     %cu: tensor<3xi32>, %logits: tensor<2x4x16xf32>) {
  // CHECK: vo.embedding {{.*}} : tensor<16x8xf32>, tensor<2x4xi64>
  %0 = vo.embedding %table, %ids : tensor<16x8xf32>, tensor<2x4xi64>
  // CHECK: vo.rms_norm {{.*}} epsilon = {{[0-9.]+E-7}} : tensor<2x4x8xf32>, tensor<8xf32>
  %1 = vo.rms_norm %0, %w epsilon = 1.0e-6 : tensor<2x4x8xf32>, tensor<8xf32>
  // CHECK: vo.swiglu
  %2 = vo.swiglu %0, %1 : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  // CHECK: vo.rope {{.*}} : tensor<1x4x6x8xf32>, tensor<1x1x6x8xf32>, tensor<1x1x6x8xf32>
  %3 = vo.rope %q, %cos, %sin : tensor<1x4x6x8xf32>, tensor<1x1x6x8xf32>, tensor<1x1x6x8xf32>
  // CHECK: vo.attention {{.*}} scale = 3.535530e-01 causal : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
  %4 = vo.attention %3, %kv, %kv scale = 0.353553 causal : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
  // CHECK: vo.attention {{.*}}, %{{.*}} scale = 1.250000e-01 causal : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<3xi32>
  %5 = vo.attention %q, %kv, %kv, %cu scale = 0.125 causal : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<3xi32>
  // CHECK: vo.cross_entropy {{.*}} : tensor<2x4x16xf32>, tensor<2x4xi64>
  %6 = vo.cross_entropy %logits, %ids : tensor<2x4x16xf32>, tensor<2x4xi64>
  // CHECK: vo.cross_entropy {{.*}} ignore_index = 0 reduction = none : tensor<2x4x16xf32>, tensor<2x4xi64>
  %7 = vo.cross_entropy %logits, %ids ignore_index = 0 reduction = none : tensor<2x4x16xf32>, tensor<2x4xi64>
  %dloss = vo.exp %6 : tensor<f32>
  // CHECK: vo.cross_entropy_grad {{.*}} : tensor<2x4x16xf32>, tensor<2x4xi64>, tensor<f32>
  %8 = vo.cross_entropy_grad %logits, %ids, %dloss : tensor<2x4x16xf32>, tensor<2x4xi64>, tensor<f32>
  // CHECK: vo.cross_entropy_grad {{.*}} bf16_result : tensor<2x4x16xf32>, tensor<2x4xi64>, tensor<f32>
  %9 = vo.cross_entropy_grad %logits, %ids, %dloss bf16_result : tensor<2x4x16xf32>, tensor<2x4xi64>, tensor<f32>
  return
}
