// RUN: veomni-opt %s -split-input-file -vo-autodiff -vo-recompute="mode=roi activation-budget=1000" -verify-diagnostics
// RUN: not veomni-opt %s -vo-autodiff -vo-recompute="mode=some" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not veomni-opt %s -vo-autodiff -vo-recompute="device=a100" 2>&1 | FileCheck %s --check-prefix=DEVICE
// RUN: not veomni-opt %s -vo-recompute 2>&1 | FileCheck %s --check-prefix=NOFUNC

// MODE: vo-recompute: mode must be none, full or roi, got 'some'
// DEVICE: vo-recompute: device must be h100 or h200, got 'a100'
// NOFUNC: vo-recompute: no single-block function @forward_backward

// A budget below what any recomputation reaches names the lowest peak found.
vo.parameter @w : tensor<64x64xf32> init #vo.init<normal, std = 2.000000e-02>
// expected-error@+1 {{vo-recompute: an activation budget of 1000 bytes cannot be met: the lowest activation peak found is}}
func.func @forward(%x: tensor<128x64xf32>) -> tensor<f32> {
  %w = vo.param @w : tensor<64x64xf32>
  %h = vo.matmul %x, %w transpose_rhs : tensor<128x64xf32>, tensor<64x64xf32>
  %s = vo.silu %h : tensor<128x64xf32>
  %y = vo.matmul %s, %w transpose_rhs : tensor<128x64xf32>, tensor<64x64xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<128x64xf32>
  return %l : tensor<f32>
}
