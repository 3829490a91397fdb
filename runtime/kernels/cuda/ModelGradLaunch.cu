// PLACEHOLDER: device code of ModelGrad.cpp.
