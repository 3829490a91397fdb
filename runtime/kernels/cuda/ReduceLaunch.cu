// PLACEHOLDER: device code of Reduce.cpp.
