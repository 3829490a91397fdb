// RUN: veomni-opt %s -vo-optimizer="grad-accum=0" -verify-diagnostics

// expected-error @+1 {{vo-optimizer: grad-accum must be >= 1, got 0}}
module {
  func.func @forward_backward() { return }
}
