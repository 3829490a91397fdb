// RUN: veomni-opt %s -split-input-file -vo-shard-fsdp="fsdp=2" -verify-diagnostics

// expected-error @+1 {{vo-shard-fsdp expects @forward_backward (run vo-autodiff first)}}
module {
  func.func @forward() { return }
}

// -----

vo.parameter @w : tensor<4xf32> init #vo.init<zeros>
// expected-error @+1 {{vo-shard-fsdp: result 1 of @forward_backward is not a gradient}}
func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}, tensor<4xf32> {vo.name = "other"}) {
  %w = vo.param @w : tensor<4xf32>
  %l = vo.reduce_sum %w axes = [0] : tensor<4xf32>
  return %l, %w : tensor<f32>, tensor<4xf32>
}

