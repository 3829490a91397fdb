// RUN: veomni-opt %S/Inputs/two-mlps.mlir -vo-autodiff -vo-recompute="mode=roi activation-budget=290000000" | FileCheck %s --check-prefix=ONE
// RUN: veomni-opt %S/Inputs/two-mlps.mlir -vo-autodiff -vo-recompute="mode=roi activation-budget=275000000" | FileCheck %s --check-prefix=TWO
// RUN: veomni-opt %S/Inputs/two-mlps.mlir -vo-autodiff -vo-recompute="mode=none" | FileCheck %s --check-prefix=NONE
// RUN: veomni-opt %S/Inputs/two-mlps.mlir -vo-autodiff -vo-recompute="mode=roi activation-budget=400000000" | FileCheck %s --check-prefix=NONE
//
// Two MLP blocks (gate and up projections of 34 GFLOP each, their SwiGLU
// product, a down projection) over 4096 tokens: while the second block's
// backward peaks, the first block's saved activations (16 MiB each) wait.
// Recomputing the SwiGLU output (gate*mul: 48 MiB moved, no products) frees
// as much as recomputing a projection (34 GFLOP) at a fraction of the time,
// so with a budget one recomputation meets, ROI takes the SwiGLU; one that
// needs two adds the next best, a projection. The backward reads the clone.
// (The budget is an input; which op is recomputed is what is checked.)

// ONE: module attributes {vo.recompute = {{{.*}}mode = "roi", {{.*}}recomputed = 1 : i64}}
// ONE-NOT: vo.matmul {{.*}}{vo.recomputed}
// ONE: %[[H:.*]] = vo.swiglu %{{.*}}, %{{.*}} {vo.recomputed}
// ONE-NOT: vo.matmul {{.*}}{vo.recomputed}
// ONE: vo.matmul %{{.*}}, %[[H]] transpose_lhs

// TWO: recomputed = 2 : i64
// TWO-DAG: vo.swiglu {{.*}} {vo.recomputed}
// TWO-DAG: vo.matmul {{.*}} {vo.recomputed}

// NONE-NOT: vo.recomputed
// NONE: recomputed = 0 : i64
// NONE-NOT: vo.recomputed
