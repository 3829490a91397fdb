// RUN: veomni-opt %s -split-input-file -vo-keep-bf16-params -verify-diagnostics

// expected-error @+1 {{vo-keep-bf16-params expects @optimizer_step (run vo-optimizer first)}}
module {
  func.func @micro_step() {
    return
  }
}

// -----

vo.parameter @gate_up : tensor<4x16x8xf32> init #vo.init<zeros>
vo.parameter @down : tensor<4x8x8xf32> init #vo.init<zeros>
func.func @micro_step(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %p: tensor<3x2xf32>)
    -> tensor<3x8xf32> {
  %gu = vo.param @gate_up : tensor<4x16x8xf32>
  // expected-error @+1 {{vo-keep-bf16-params: @optimizer_step does not update @gate_up}}
  %gu16 = vo.cast %gu : tensor<4x16x8xf32> to bf16
  %d = vo.param @down : tensor<4x8x8xf32>
  %d16 = vo.cast %d : tensor<4x8x8xf32> to bf16
  %y = vo.moe_experts %x, %ids, %p, %gu16, %d16 : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x16x8xbf16>, tensor<4x8x8xbf16>
  return %y : tensor<3x8xf32>
}
func.func @optimizer_step() {
  return
}
