//===- ArtifactFormat.h - the .vob container, shared by writer and reader -===//
//
// [header 64 B][program: FlatBuffer, padded to 64][blobs]
// The header makes truncation, corruption and version skew detectable
// before any of the program is trusted. Header-only, no dependencies, so
// the compiler (writer) and the runtime (reader) share one definition.
//
//===----------------------------------------------------------------------===//

#ifndef VEOMNI_RUNTIME_ARTIFACT_ARTIFACTFORMAT_H
#define VEOMNI_RUNTIME_ARTIFACT_ARTIFACTFORMAT_H

#include <cstddef>
#include <cstdint>

namespace veomni::artifact {

inline constexpr char kMagic[8] = {'V', 'E', 'O', 'M', 'N', 'I', 'V', 'B'};
/// Bump on any change of Artifact.fbs or of this layout.
inline constexpr uint32_t kSchemaVersion = 3;  // 3: expert-parallel state
inline constexpr uint64_t kAlignment = 64;

struct Header {
  char magic[8];
  uint32_t schema_version;
  uint32_t header_bytes;     // sizeof(Header)
  uint64_t program_offset;   // = 64
  uint64_t program_bytes;    // the FlatBuffer, unpadded
  uint64_t blobs_offset;     // 64-aligned, after the program
  uint64_t blobs_bytes;
  uint64_t checksum;         // FNV-1a 64 of every byte after the header
  uint64_t reserved;
};
static_assert(sizeof(Header) == 64, "the header is 64 bytes");

/// FNV-1a, 64-bit: simple, and enough to catch corruption (not tampering).
inline uint64_t Fnv1a64(const void *data, size_t size,
                        uint64_t hash = 0xcbf29ce484222325ull) {
  const unsigned char *bytes = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

inline uint64_t AlignUp(uint64_t value) {
  return (value + kAlignment - 1) / kAlignment * kAlignment;
}

} // namespace veomni::artifact

#endif // VEOMNI_RUNTIME_ARTIFACT_ARTIFACTFORMAT_H
