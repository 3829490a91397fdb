#include "runtime/artifact/Artifact.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "runtime/artifact/ArtifactFormat.h"

namespace veomni::runtime {

absl::StatusOr<std::unique_ptr<Artifact>> Artifact::Load(absl::string_view path) {
  std::ifstream file(std::string(path), std::ios::binary | std::ios::ate);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot open artifact '", path, "'"));
  }
  // A directory opens too, and reports a bogus size.
  std::error_code error;
  if (!std::filesystem::is_regular_file(std::string(path), error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read artifact '", path, "': not a regular file"));
  }
  std::streamsize size = file.tellg();
  if (size < 0) {
    return absl::DataLossError(absl::StrCat("cannot read artifact '", path, "'"));
  }
  file.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !file.read(reinterpret_cast<char*>(bytes.data()), size)) {
    return absl::DataLossError(absl::StrCat("cannot read artifact '", path, "'"));
  }
  return FromBytes(std::move(bytes), path);
}

absl::StatusOr<std::unique_ptr<Artifact>> Artifact::FromBytes(
    std::vector<uint8_t> bytes, absl::string_view name) {
  auto fail = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("artifact '", name, "': ", what));
  };
  artifact::Header header;
  if (bytes.size() < sizeof(header)) {
    return fail(absl::StrCat("truncated: ", bytes.size(),
                             " bytes, shorter than its 64-byte header"));
  }
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (std::memcmp(header.magic, artifact::kMagic, sizeof(header.magic)) != 0) {
    return fail("not a veomni artifact (bad magic)");
  }
  if (header.schema_version != artifact::kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "artifact '", name, "' has schema version ", header.schema_version,
        "; this runtime reads version ", artifact::kSchemaVersion,
        " (recompile it with the matching veomni-compile)"));
  }
  uint64_t expected = header.blobs_offset + header.blobs_bytes;
  if (header.header_bytes != sizeof(header) ||
      header.program_offset != sizeof(header) ||
      // Compared by subtraction: a forged program_bytes must not wrap around.
      header.blobs_offset < header.program_offset ||
      header.program_bytes > header.blobs_offset - header.program_offset ||
      header.blobs_offset % artifact::kAlignment != 0 ||
      expected < header.blobs_offset) {
    return fail("corrupt header (inconsistent section offsets)");
  }
  if (bytes.size() != expected) {
    return fail(absl::StrCat(bytes.size() < expected ? "truncated" : "has trailing bytes",
                             ": the header describes ", expected, " bytes, the file has ",
                             bytes.size(), " bytes"));
  }
  uint64_t checksum = artifact::Fnv1a64(bytes.data() + sizeof(header),
                                        bytes.size() - sizeof(header));
  if (checksum != header.checksum) {
    return fail("corrupt: checksum mismatch");
  }
  const uint8_t* program = bytes.data() + header.program_offset;
  flatbuffers::Verifier verifier(program, header.program_bytes);
  if (!artifact::VerifyProgramBuffer(verifier)) {
    return fail("corrupt program (FlatBuffer verification failed)");
  }
  auto loaded = std::unique_ptr<Artifact>(new Artifact());
  loaded->bytes_ = std::move(bytes);
  loaded->program_ = artifact::GetProgram(loaded->bytes_.data() + header.program_offset);
  loaded->blobs_offset_ = header.blobs_offset;
  loaded->blobs_bytes_ = header.blobs_bytes;
  return loaded;
}

const artifact::Function* Artifact::FindFunction(absl::string_view name) const {
  if (!program_->functions()) return nullptr;
  for (const artifact::Function* function : *program_->functions()) {
    if (function->name() &&
        absl::string_view(function->name()->c_str(), function->name()->size()) == name) {
      return function;
    }
  }
  return nullptr;
}

}  // namespace veomni::runtime
