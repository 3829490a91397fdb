// RUN: veomni-opt %s -vo-bf16-matmuls="max-operand-bytes=0" -verify-diagnostics

// expected-error @+1 {{vo-bf16-matmuls: max-operand-bytes must be > 0, got 0}}
module {
  func.func @f() { return }
}
