// RUN: veomni-opt %s -vo-optimizer -verify-diagnostics

// expected-error @+1 {{vo-optimizer expects @forward_backward (run vo-autodiff first)}}
module {
  func.func @forward() { return }
}
