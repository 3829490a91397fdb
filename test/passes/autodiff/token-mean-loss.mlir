// RUN: veomni-opt %s -split-input-file -vo-token-mean-loss -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @forward
// CHECK-SAME: %[[SCALE:[a-z_0-9]+]]: tensor<f32> {vo.name = "loss_scale"}
// CHECK: %[[SUM:[a-z_0-9]+]] = vo.cross_entropy %{{.*}}, %{{.*}} ignore_index = -1 reduction = sum
// CHECK: %[[LOSS:[a-z_0-9]+]] = vo.mul %[[SUM]], %[[SCALE]]
// CHECK: return %[[LOSS]]
// CHECK-LABEL: func.func @count_tokens
// CHECK-SAME: (%{{.*}}: tensor<2x4x8xf32>, %[[LABELS:[a-z_0-9]+]]: tensor<2x4xi64>) -> (tensor<f32> {vo.name = "tokens"})
// CHECK: %[[IGNORE:[a-z_0-9]+]] = vo.constant dense<-1> : tensor<i64>
// CHECK: %[[VALID:[a-z_0-9]+]] = vo.cmp ne, %[[LABELS]], %[[IGNORE]]
// CHECK: %[[ONES:[a-z_0-9]+]] = vo.cast %[[VALID]] : tensor<2x4xi1> to f32
// CHECK: %[[COUNT:[a-z_0-9]+]] = vo.reduce_sum %[[ONES]] axes = [0, 1]
// CHECK: return %[[COUNT]]
func.func @forward(%logits: tensor<2x4x8xf32>, %labels: tensor<2x4xi64>) -> tensor<f32> {
  %l = vo.cross_entropy %logits, %labels ignore_index = -1 : tensor<2x4x8xf32>, tensor<2x4xi64>
  return %l : tensor<f32>
}

// -----

func.func @forward(%logits: tensor<2x4x8xf32>, %labels: tensor<2x4xi64>) -> tensor<f32> {
  %l = vo.cross_entropy %logits, %labels reduction = sum : tensor<2x4x8xf32>, tensor<2x4xi64>
  // expected-error @+1 {{vo-token-mean-loss expects @forward to return a mean vo.cross_entropy, got vo.cross_entropy}}
  return %l : tensor<f32>
}

// -----

func.func @forward(%x: tensor<f32>) -> tensor<f32> {
  %y = vo.exp %x : tensor<f32>
  // expected-error @+1 {{vo-token-mean-loss expects @forward to return a mean vo.cross_entropy, got vo.exp}}
  return %y : tensor<f32>
}
