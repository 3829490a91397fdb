// RUN: veomni-opt %s -vo-prefetch-gathers="depth=-1" -verify-diagnostics

// expected-error @+1 {{vo-prefetch-gathers: depth must be >= 0, got -1}}
module {
  func.func @f() { return }
}
