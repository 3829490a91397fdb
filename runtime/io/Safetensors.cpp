#include "runtime/io/Safetensors.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace veomni::runtime {
namespace {

absl::string_view SafetensorsDType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI1:
      return "BOOL";
  }
  return "F32";
}

// Tensor names are parameter names; escape what JSON requires anyway.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

absl::Status WriteSafetensors(absl::string_view path,
                              const std::vector<std::pair<std::string, TensorView>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<std::string> entries;
  if (!metadata.empty()) {
    std::vector<std::string> items;
    for (const auto& [key, value] : metadata) {
      items.push_back(absl::StrCat(JsonString(key), ":", JsonString(value)));
    }
    entries.push_back(absl::StrCat("\"__metadata__\":{", absl::StrJoin(items, ","), "}"));
  }
  int64_t offset = 0;
  for (const auto& [name, view] : tensors) {
    entries.push_back(absl::StrCat(JsonString(name), ":{\"dtype\":\"",
                                   SafetensorsDType(view.dtype), "\",\"shape\":[",
                                   absl::StrJoin(view.shape, ","), "],\"data_offsets\":[",
                                   offset, ",", offset + view.Bytes(), "]}"));
    offset += view.Bytes();
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  header.append((8 - header.size() % 8) % 8, ' ');
  // Written beside the target and renamed over it once complete, so a
  // process killed mid-write never leaves a truncated file under its name.
  std::string partial = absl::StrCat(path, ".partial");
  std::ofstream file(partial, std::ios::binary);
  if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot write '", partial, "'"));
  uint64_t length = header.size();
  file.write(reinterpret_cast<const char*>(&length), 8);
  file.write(header.data(), header.size());
  for (const auto& [name, view] : tensors) {
    file.write(static_cast<const char*>(view.data), view.Bytes());
  }
  file.close();
  if (!file) {
    std::remove(partial.c_str());
    return absl::DataLossError(absl::StrCat("error writing '", partial, "'"));
  }
  if (std::rename(partial.c_str(), std::string(path).c_str()) != 0) {
    std::remove(partial.c_str());
    return absl::DataLossError(absl::StrCat("cannot rename '", partial, "' to '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime
