// RUN: veomni-opt %s -split-input-file -vo-prefetch-gathers | FileCheck %s
// RUN: veomni-opt %s -split-input-file -vo-prefetch-gathers="depth=1" | FileCheck %s --check-prefix=ONE
// RUN: veomni-opt %s -split-input-file -vo-prefetch-gathers="depth=0" | FileCheck %s --check-prefix=NONE

// Four weights, each gathered (its shard rounded to bf16 first) right before
// the op that reads it. With depth 2 the third and fourth gathers, with their
// roundings, move before the readers of the first and second: the weights
// move while those compute (the readers are the matmuls, not the reshapes).
// The first two stay where they are.
// CHECK-LABEL: func.func @chain
// CHECK: %[[C0:.*]] = vo.cast %arg0
// CHECK-NEXT: %[[G0:.*]] = vo.all_gather %[[C0]]
// CHECK-NEXT: %[[W0:.*]] = vo.reshape %[[G0]]
// CHECK-NEXT: %[[C2:.*]] = vo.cast %arg2
// CHECK-NEXT: %[[G2:.*]] = vo.all_gather %[[C2]]
// CHECK-NEXT: %[[X1:.*]] = vo.matmul %arg4, %[[W0]]
// CHECK-NEXT: %[[C1:.*]] = vo.cast %arg1
// CHECK-NEXT: %[[G1:.*]] = vo.all_gather %[[C1]]
// CHECK-NEXT: %[[W1:.*]] = vo.reshape %[[G1]]
// CHECK-NEXT: %[[C3:.*]] = vo.cast %arg3
// CHECK-NEXT: %[[G3:.*]] = vo.all_gather %[[C3]]
// CHECK-NEXT: %[[X2:.*]] = vo.matmul %[[X1]], %[[W1]]
// CHECK-NEXT: %[[W2:.*]] = vo.reshape %[[G2]]
// CHECK-NEXT: %[[X3:.*]] = vo.matmul %[[X2]], %[[W2]]
// CHECK-NEXT: %[[W3:.*]] = vo.reshape %[[G3]]
// CHECK-NEXT: vo.matmul %[[X3]], %[[W3]]
// ONE-LABEL: func.func @chain
// ONE: vo.reshape
// ONE-NEXT: vo.cast %arg1
// ONE-NEXT: vo.all_gather
// ONE-NEXT: vo.matmul %arg4
// NONE-LABEL: func.func @chain
// NONE: vo.all_gather
// NONE-NEXT: vo.reshape
// NONE-NEXT: vo.matmul %arg4
func.func @chain(%arg0: tensor<8xf32>, %arg1: tensor<8xf32>, %arg2: tensor<8xf32>,
                 %arg3: tensor<8xf32>, %arg4: tensor<3x4xbf16>) -> tensor<3x4xbf16> {
  %c0 = vo.cast %arg0 : tensor<8xf32> to bf16
  %g0 = vo.all_gather %c0 over ["fsdp"] group_size = 2 dim = 0 : tensor<8xbf16>
  %w0 = vo.reshape %g0 to [4, 4] : tensor<16xbf16>
  %x1 = vo.matmul %arg4, %w0 : tensor<3x4xbf16>, tensor<4x4xbf16>
  %c1 = vo.cast %arg1 : tensor<8xf32> to bf16
  %g1 = vo.all_gather %c1 over ["fsdp"] group_size = 2 dim = 0 : tensor<8xbf16>
  %w1 = vo.reshape %g1 to [4, 4] : tensor<16xbf16>
  %x2 = vo.matmul %x1, %w1 : tensor<3x4xbf16>, tensor<4x4xbf16>
  %c2 = vo.cast %arg2 : tensor<8xf32> to bf16
  %g2 = vo.all_gather %c2 over ["fsdp"] group_size = 2 dim = 0 : tensor<8xbf16>
  %w2 = vo.reshape %g2 to [4, 4] : tensor<16xbf16>
  %x3 = vo.matmul %x2, %w2 : tensor<3x4xbf16>, tensor<4x4xbf16>
  %c3 = vo.cast %arg3 : tensor<8xf32> to bf16
  %g3 = vo.all_gather %c3 over ["fsdp"] group_size = 2 dim = 0 : tensor<8xbf16>
  %w3 = vo.reshape %g3 to [4, 4] : tensor<16xbf16>
  %x4 = vo.matmul %x3, %w3 : tensor<3x4xbf16>, tensor<4x4xbf16>
  return %x4 : tensor<3x4xbf16>
}

// -----

// A gather whose input needs a collective (here an all-reduce) moves only up
// to right after it. With depth 2 (two gathers) nothing moves.
// ONE-LABEL: func.func @blocked
// ONE: %[[E:.*]] = vo.exp %arg2
// ONE-NEXT: %[[G0:.*]] = vo.all_gather %arg0
// ONE-NEXT: %[[A:.*]] = vo.add %[[E]], %[[G0]]
// ONE-NEXT: %[[R:.*]] = vo.all_reduce
// ONE-NEXT: %[[G1:.*]] = vo.all_gather %[[R]]
// ONE-NEXT: vo.exp %[[A]]
// ONE-NEXT: vo.exp %[[G1]]
// CHECK-LABEL: func.func @blocked
// CHECK: vo.all_reduce
// CHECK-NEXT: vo.exp
// CHECK-NEXT: vo.all_gather
func.func @blocked(%arg0: tensor<4xf32>, %arg1: tensor<8xf32>, %arg2: tensor<8xf32>)
    -> (tensor<8xf32>, tensor<8xf32>, tensor<16xf32>) {
  %e = vo.exp %arg2 : tensor<8xf32>
  %g0 = vo.all_gather %arg0 over ["fsdp"] group_size = 2 dim = 0 : tensor<4xf32>
  %a = vo.add %e, %g0 : tensor<8xf32>, tensor<8xf32>
  %r = vo.all_reduce %arg1 over ["fsdp"] group_size = 2 : tensor<8xf32>
  %b = vo.exp %a : tensor<8xf32>
  %g1 = vo.all_gather %r over ["fsdp"] group_size = 2 dim = 0 : tensor<8xf32>
  %c = vo.exp %g1 : tensor<16xf32>
  return %a, %b, %c : tensor<8xf32>, tensor<8xf32>, tensor<16xf32>
}
