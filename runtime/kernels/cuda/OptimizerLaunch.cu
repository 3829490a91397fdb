// PLACEHOLDER: device code of Optimizer.cpp.
