// RUN: veomni-opt %s -allow-unregistered-dialect -vrt-forward-stores -verify-diagnostics

// Positions order reads and writes only within one block.
// expected-error @+1 {{vrt-forward-stores expects straight-line functions}}
func.func @branchy() {
  "test.br"()[^next] : () -> ()
^next:
  return
}
