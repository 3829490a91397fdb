// RUN: veomni-opt %s -split-input-file -verify-diagnostics

func.func @param_kind() {
  // expected-error @+1 {{'vrt.launch' op param 'name' must be an integer, a float or an i64 array, got "x"}}
  %0 = vrt.launch "fill"() {name = "x"} : () -> tensor<4xf32>
  return
}

// -----

func.func @offset_count() {
  // expected-error @+1 {{'vrt.launch' op has 2 offsets for 1 results}}
  %0 = vrt.launch "fill"() {value = 0.0 : f64} {offsets = array<i64: 0, 64>} : () -> tensor<4xf32>
  return
}

// -----

func.func @misaligned() {
  // expected-error @+1 {{'vrt.launch' op offset 32 is not a non-negative multiple of 64}}
  %0 = vrt.launch "fill"() {value = 0.0 : f64} {offsets = array<i64: 32>} : () -> tensor<4xf32>
  return
}

// -----

func.func @empty_kernel() {
  // expected-error @+1 {{'vrt.launch' op expects a kernel name}}
  %0 = vrt.launch ""() {} : () -> tensor<4xf32>
  return
}

// -----

func.func @constant_type() {
  // expected-error @+1 {{'vrt.constant' op failed to verify that all of {value, result} have same type}}
  %0 = "vrt.constant"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<3xf32>
  return
}

// -----

// -1 means "written into the state by a forwarded store"; without one it is
// just a bad offset.
func.func @unforwarded_minus_one() {
  // expected-error @+1 {{'vrt.launch' op offset -1 is not a non-negative multiple of 64 (-1 is for results of forwarded stores)}}
  %0 = vrt.launch "fill"() {value = 0.0 : f64} {offsets = array<i64: -1>} : () -> tensor<4xf32>
  vrt.store "grad:w", %0 : tensor<4xf32>
  return
}

// -----

// A forwarded store drops its copy, so its value must be a launch's own
// result, stored once.
func.func @forwarded_state_read() {
  %s = vrt.state "param:w" : tensor<4xf32>
  // expected-error @+1 {{'vrt.store' op is forwarded, but its value is not a launch's own result}}
  vrt.store "grad:w", %s {forwarded} : tensor<4xf32>
  return
}

// -----

func.func @forwarded_reshape() {
  %0 = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<4xf32>
  %1 = vrt.launch "reshape"(%0) {} : (tensor<4xf32>) -> tensor<2x2xf32>
  // expected-error @+1 {{'vrt.store' op is forwarded, but its value is not a launch's own result}}
  vrt.store "grad:w", %1 {forwarded} : tensor<2x2xf32>
  return
}

// -----

func.func @forwarded_twice() {
  %0 = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<4xf32>
  // expected-error @+1 {{'vrt.store' op is forwarded, but its value is stored twice}}
  vrt.store "grad:w", %0 {forwarded} : tensor<4xf32>
  vrt.store "grad:u", %0 : tensor<4xf32>
  return
}
