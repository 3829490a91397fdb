// The loaded artifact: its bytes, validated, and the program inside.

#ifndef VEOMNI_RUNTIME_ARTIFACT_ARTIFACT_H
#define VEOMNI_RUNTIME_ARTIFACT_ARTIFACT_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/artifact/Artifact_generated.h"

namespace veomni::runtime {

class Artifact {
 public:
  // Reads and validates a .vob file: header, schema version, sizes,
  // checksum and the FlatBuffer's structure. Any failure names the file and
  // what is wrong with it.
  static absl::StatusOr<std::unique_ptr<Artifact>> Load(absl::string_view path);
  // The same from bytes already in memory (tests).
  static absl::StatusOr<std::unique_ptr<Artifact>> FromBytes(
      std::vector<uint8_t> bytes, absl::string_view name);

  const artifact::Program& program() const { return *program_; }
  const uint8_t* blobs() const { return bytes_.data() + blobs_offset_; }
  uint64_t blobs_bytes() const { return blobs_bytes_; }

  // The function named `name`, or nullptr.
  const artifact::Function* FindFunction(absl::string_view name) const;

 private:
  Artifact() = default;
  std::vector<uint8_t> bytes_;
  const artifact::Program* program_ = nullptr;
  uint64_t blobs_offset_ = 0;
  uint64_t blobs_bytes_ = 0;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_ARTIFACT_ARTIFACT_H
