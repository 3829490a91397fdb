// RUN: veomni-opt %s -split-input-file -vo-raise | FileCheck %s

// The ONNX exporter's form: pow, reduce_mean, add eps, sqrt, reciprocal.
// CHECK-LABEL: func @exporter_form
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<8xf32>)
// CHECK-NEXT: %[[N:.*]] = vo.rms_norm %[[X]], %[[W]] epsilon = 1.220703125E-4 : tensor<2x8xf32>, tensor<8xf32>
// CHECK-NEXT: return %[[N]]
func.func @exporter_form(%x: tensor<2x8xf32>, %w: tensor<8xf32>) -> tensor<2x8xf32> {
  %two = vo.constant dense<2.0> : tensor<f32>
  %eps = vo.constant dense<1.220703125e-4> : tensor<f32>
  %0 = vo.pow %x, %two : tensor<2x8xf32>, tensor<f32>
  %1 = vo.reduce_mean %0 axes = [1] keep_dims : tensor<2x8xf32>
  %2 = vo.add %1, %eps : tensor<2x1xf32>, tensor<f32>
  %3 = vo.sqrt %2 : tensor<2x1xf32>
  %4 = vo.reciprocal %3 : tensor<2x1xf32>
  %5 = vo.mul %x, %4 : tensor<2x8xf32>, tensor<2x1xf32>
  %6 = vo.mul %w, %5 : tensor<8xf32>, tensor<2x8xf32>
  return %6 : tensor<2x8xf32>
}

// -----

// rsqrt, x*x, and the weight on the right.
// CHECK-LABEL: func @rsqrt_form
// CHECK: vo.rms_norm %{{.*}}, %{{.*}} epsilon = 9.765625E-4
// CHECK-NOT: vo.rsqrt
func.func @rsqrt_form(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>) -> tensor<2x4x8xf32> {
  %e = vo.constant dense<9.765625e-4> : tensor<f32>
  %0 = vo.mul %x, %x : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %1 = vo.reduce_mean %0 axes = [2] keep_dims : tensor<2x4x8xf32>
  %2 = vo.add %e, %1 : tensor<f32>, tensor<2x4x1xf32>
  %3 = vo.rsqrt %2 : tensor<2x4x1xf32>
  %4 = vo.mul %3, %x : tensor<2x4x1xf32>, tensor<2x4x8xf32>
  %5 = vo.mul %4, %w : tensor<2x4x8xf32>, tensor<8xf32>
  return %5 : tensor<2x4x8xf32>
}

// -----

// The mean runs over the wrong axis: not an RMSNorm.
// CHECK-LABEL: func @wrong_axis
// CHECK-NOT: vo.rms_norm
func.func @wrong_axis(%x: tensor<8x8xf32>, %w: tensor<8xf32>) -> tensor<8x8xf32> {
  %two = vo.constant dense<2.0> : tensor<f32>
  %eps = vo.constant dense<1.0e-5> : tensor<f32>
  %0 = vo.pow %x, %two : tensor<8x8xf32>, tensor<f32>
  %1 = vo.reduce_mean %0 axes = [0] keep_dims : tensor<8x8xf32>
  %2 = vo.add %1, %eps : tensor<1x8xf32>, tensor<f32>
  %3 = vo.rsqrt %2 : tensor<1x8xf32>
  %4 = vo.mul %x, %3 : tensor<8x8xf32>, tensor<1x8xf32>
  %5 = vo.mul %w, %4 : tensor<8xf32>, tensor<8x8xf32>
  return %5 : tensor<8x8xf32>
}

// -----

// x^3 is not a square.
// CHECK-LABEL: func @wrong_exponent
// CHECK-NOT: vo.rms_norm
func.func @wrong_exponent(%x: tensor<2x8xf32>, %w: tensor<8xf32>) -> tensor<2x8xf32> {
  %three = vo.constant dense<3.0> : tensor<f32>
  %eps = vo.constant dense<1.0e-5> : tensor<f32>
  %0 = vo.pow %x, %three : tensor<2x8xf32>, tensor<f32>
  %1 = vo.reduce_mean %0 axes = [1] keep_dims : tensor<2x8xf32>
  %2 = vo.add %1, %eps : tensor<2x1xf32>, tensor<f32>
  %3 = vo.rsqrt %2 : tensor<2x1xf32>
  %4 = vo.mul %x, %3 : tensor<2x8xf32>, tensor<2x1xf32>
  %5 = vo.mul %w, %4 : tensor<8xf32>, tensor<2x8xf32>
  return %5 : tensor<2x8xf32>
}
