// Writes tensors in the safetensors format (what HF transformers loads):
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the bytes.

#ifndef VEOMNI_RUNTIME_IO_SAFETENSORS_H
#define VEOMNI_RUNTIME_IO_SAFETENSORS_H

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "runtime/base/Tensor.h"

namespace veomni::runtime {

absl::Status WriteSafetensors(absl::string_view path,
                              const std::vector<std::pair<std::string, TensorView>>& tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_IO_SAFETENSORS_H
