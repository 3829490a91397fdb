// RUN: veomni-opt %s -split-input-file -vo-autodiff -verify-diagnostics

// expected-error @+1 {{vo-autodiff: no function @forward}}
module {
  func.func @other() { return }
}

// -----

// expected-error @+1 {{vo-autodiff expects a scalar floating-point loss, got 'tensor<2xf32>'}}
func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
  return %x : tensor<2xf32>
}

// -----

// Backward-only ops have no rule of their own.
vo.parameter @x : tensor<1x1x2x4xf32> init #vo.init<zeros>
func.func @forward(%c: tensor<1x1x2x4xf32>) -> tensor<f32> {
  %x = vo.param @x : tensor<1x1x2x4xf32>
  // expected-error @+1 {{'vo.rope_grad' op has no gradient rule, but lies between a parameter and the loss}}
  %y = vo.rope_grad %x, %c, %c : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2, 3] : tensor<1x1x2x4xf32>
  return %l : tensor<f32>
}

// -----

// RoPE tables computed from a parameter.
vo.parameter @theta : tensor<1x1x2x4xf32> init #vo.init<zeros>
func.func @forward(%x: tensor<1x1x2x4xf32>) -> tensor<f32> {
  %t = vo.param @theta : tensor<1x1x2x4xf32>
  %c = vo.cos %t : tensor<1x1x2x4xf32>
  %s = vo.sin %t : tensor<1x1x2x4xf32>
  // expected-error @+1 {{'vo.rope' op gradient w.r.t. the cos/sin tables is not supported; they must not depend on parameters}}
  %y = vo.rope %x, %c, %s : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2, 3] : tensor<1x1x2x4xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @x : tensor<6xf32> init #vo.init<zeros>
func.func @forward() -> tensor<f32> {
  %x = vo.param @x : tensor<6xf32>
  // expected-error @+1 {{'vo.slice' op gradient of a strided slice is not supported}}
  %y = vo.slice %x start = [0] limit = [6] stride = [2] : tensor<6xf32>
  %l = vo.reduce_sum %y axes = [0] : tensor<3xf32>
  return %l : tensor<f32>
}

// -----

// Mixed-precision matmuls come after autodiff (vo-bf16-matmuls).
vo.parameter @w : tensor<4x2xbf16> init #vo.init<zeros>
func.func @forward(%x: tensor<3x4xbf16>) -> tensor<f32> {
  %w = vo.param @w : tensor<4x2xbf16>
  // expected-error @+1 {{'vo.matmul' op with f32_result has no gradient rule (vo-bf16-matmuls runs after autodiff)}}
  %y = vo.matmul %x, %w f32_result : tensor<3x4xbf16>, tensor<4x2xbf16>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<3x2xf32>
  return %l : tensor<f32>
}
