// RUN: veomni-opt %s -split-input-file -vo-shard-experts="ep=3" -verify-diagnostics

vo.parameter @gate_up : tensor<4x6x2xf32> init #vo.init<ones>
vo.parameter @down : tensor<4x2x3xf32> init #vo.init<ones>
func.func @forward_backward(%x: tensor<3x2xf32>, %e: tensor<3x1xi64>, %w: tensor<3x1xf32>) -> (tensor<f32> {vo.name = "loss"}) {
  %gu = vo.param @gate_up : tensor<4x6x2xf32>
  %dn = vo.param @down : tensor<4x2x3xf32>
  // expected-error @+1 {{'vo.moe_experts' op ep=3 does not divide 4 experts in layer 1}}
  %y = vo.moe_experts %x, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<4x6x2xf32>, tensor<4x2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<3x2xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @down : tensor<6x2x3xf32> init #vo.init<ones>
func.func @forward_backward(%x: tensor<3x2xf32>, %e: tensor<3x1xi64>, %w: tensor<3x1xf32>, %gu: tensor<6x6x2xf32>) -> (tensor<f32> {vo.name = "loss"}) {
  %dn = vo.param @down : tensor<6x2x3xf32>
  // expected-error @+1 {{'vo.moe_experts' op under ep=3: expects its expert weights to be parameters (vo.param)}}
  %y = vo.moe_experts %x, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<6x6x2xf32>, tensor<6x2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<3x2xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @gate_up : tensor<6x6x2xf32> init #vo.init<ones>
vo.parameter @down : tensor<6x2x3xf32> init #vo.init<ones>
func.func @forward_backward(%x: tensor<3x2xf32>, %e: tensor<3x1xi64>, %w: tensor<3x1xf32>) -> (tensor<f32> {vo.name = "loss"}) {
  %gu = vo.param @gate_up : tensor<6x6x2xf32>
  // expected-error @+1 {{'vo.param' op reads expert weights @down for 'vo.reduce_sum'; under ep they may only feed vo.moe_experts}}
  %dn = vo.param @down : tensor<6x2x3xf32>
  %y = vo.moe_experts %x, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<6x6x2xf32>, tensor<6x2x3xf32>
  %s = vo.reduce_sum %dn axes = [0, 1, 2] : tensor<6x2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<3x2xf32>
  %t = vo.add %l, %s : tensor<f32>, tensor<f32>
  return %t : tensor<f32>
}

// -----

vo.parameter @gate_up : tensor<6x6x2xf32> init #vo.init<ones>
vo.parameter @down : tensor<6x2x3xf32> init #vo.init<ones>
func.func @forward_backward(%x: tensor<3x2xf32>, %e: tensor<3x1xi64>, %w: tensor<3x1xf32>) -> (tensor<f32> {vo.name = "loss"}) {
  // expected-error @+1 {{'vo.param' op expert weights @gate_up are shared by two MoE layers, which ep does not split}}
  %gu = vo.param @gate_up : tensor<6x6x2xf32>
  %dn = vo.param @down : tensor<6x2x3xf32>
  %y = vo.moe_experts %x, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<6x6x2xf32>, tensor<6x2x3xf32>
  %z = vo.moe_experts %y, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<6x6x2xf32>, tensor<6x2x3xf32>
  %l = vo.reduce_sum %z axes = [0, 1] : tensor<3x2xf32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{vo-shard-experts: ep=3 but @forward_backward has no vo.moe_experts}}
module {
  func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}) {
    %c = vo.constant dense<1.0> : tensor<f32>
    return %c : tensor<f32>
  }
}

// -----

// expected-error @+1 {{vo-shard-experts expects @forward_backward (run vo-autodiff first)}}
module {
  func.func @forward() { return }
}
