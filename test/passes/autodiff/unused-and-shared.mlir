// RUN: veomni-opt %s -vo-autodiff | FileCheck %s
// A parameter read twice gets the sum of both paths' gradients; one that is
// read but does not reach the loss, or never read, gets no gradient at all
// (so no update, as PyTorch's AdamW skips parameters whose .grad is None).

vo.parameter @shared : tensor<4xf32> init #vo.init<ones>
vo.parameter @dead : tensor<4xf32> init #vo.init<ones>
vo.parameter @unread : tensor<4xf32> init #vo.init<ones>

// CHECK-LABEL: func.func @forward_backward
// CHECK-SAME: -> (tensor<f32> {vo.name = "loss"}, tensor<4xf32> {vo.name = "grad.shared"})
// CHECK: vo.broadcast_to
// CHECK: %[[A:[a-z_0-9]+]] = vo.mul %{{.*}}, %[[S:[a-z_0-9]+]] : tensor<4xf32>, tensor<4xf32>
// CHECK: %[[B:[a-z_0-9]+]] = vo.mul %{{.*}}, %[[S]] : tensor<4xf32>, tensor<4xf32>
// CHECK: %[[SUM:[a-z_0-9]+]] = vo.add %[[A]], %[[B]]
// CHECK: return %{{.*}}, %[[SUM]] : tensor<f32>, tensor<4xf32>
func.func @forward() -> tensor<f32> {
  %s = vo.param @shared : tensor<4xf32>
  %d = vo.param @dead : tensor<4xf32>
  %sq = vo.mul %s, %s : tensor<4xf32>, tensor<4xf32>
  %l = vo.reduce_sum %sq axes = [0] : tensor<4xf32>
  %unused = vo.exp %d : tensor<4xf32>
  return %l : tensor<f32>
}
