#include "runtime/data/TokenFile.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace veomni::runtime {
namespace {

constexpr char kMagic[8] = {'V', 'O', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 32;

}  // namespace

absl::StatusOr<TokenData> ReadTokenFile(absl::string_view path, int64_t vocab_size) {
  std::ifstream file(std::string(path), std::ios::binary | std::ios::ate);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open data file '", path, "'"));
  std::streamoff end = file.tellg();
  file.seekg(0);
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("data file '", path, "': ", what));
  };
  // A directory opens too, and reports a bogus size.
  std::error_code error;
  if (end < 0 || !std::filesystem::is_regular_file(std::string(path), error)) {
    return fail("not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(end);
  if (size < kHeaderBytes) return fail("shorter than its 32-byte header");
  char header[kHeaderBytes];
  file.read(header, kHeaderBytes);
  if (std::memcmp(header, kMagic, 8) != 0) {
    return fail("not a token file (bad magic; make one with veomni-tokenize)");
  }
  uint32_t version, width, flags;
  uint64_t count;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&width, header + 12, 4);
  std::memcpy(&count, header + 16, 8);
  std::memcpy(&flags, header + 24, 4);
  if (version != kVersion) {
    return fail(absl::StrCat("version ", version, "; this runtime reads version ", kVersion));
  }
  if (width != 1 && width != 2 && width != 4) {
    return fail(absl::StrCat("bytes per token is ", width, ", not 1, 2 or 4"));
  }
  bool has_labels = flags & 1;
  uint64_t expected = kHeaderBytes + count * width + (has_labels ? count * 4 : 0);
  if (count > (size - kHeaderBytes) || size != expected) {
    return fail(absl::StrCat("the header describes ", count, " tokens (", expected,
                             " bytes), the file has ", size, " bytes"));
  }
  std::vector<uint8_t> raw(count * width);
  file.read(reinterpret_cast<char*>(raw.data()), raw.size());
  TokenData data;
  data.tokens.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t id = 0;
    std::memcpy(&id, raw.data() + i * width, width);
    if (id >= static_cast<uint64_t>(vocab_size)) {
      return fail(absl::StrCat("token ", id, " at position ", i,
                               " is outside the model's vocabulary [0, ", vocab_size, ")"));
    }
    data.tokens[i] = id;
  }
  if (has_labels) {
    std::vector<int32_t> labels(count);
    file.read(reinterpret_cast<char*>(labels.data()), count * 4);
    data.labels.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= vocab_size)) {
        return fail(absl::StrCat("label ", labels[i], " at position ", i,
                                 " is neither -100 nor in [0, ", vocab_size, ")"));
      }
      data.labels[i] = labels[i];
    }
  }
  if (!file) return fail("read error");
  return data;
}

absl::Status WriteTokenFile(absl::string_view path, const std::vector<int64_t>& tokens,
                            const std::vector<int64_t>* labels, int bytes_per_token) {
  if (bytes_per_token != 1 && bytes_per_token != 2 && bytes_per_token != 4) {
    return absl::InvalidArgumentError("bytes per token must be 1, 2 or 4");
  }
  if (labels && labels->size() != tokens.size()) {
    return absl::InvalidArgumentError("labels and tokens differ in length");
  }
  std::ofstream file(std::string(path), std::ios::binary);
  if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  uint32_t version = kVersion, width = bytes_per_token, flags = labels ? 1 : 0;
  uint64_t count = tokens.size();
  std::memcpy(header + 8, &version, 4);
  std::memcpy(header + 12, &width, 4);
  std::memcpy(header + 16, &count, 8);
  std::memcpy(header + 24, &flags, 4);
  file.write(header, kHeaderBytes);
  uint64_t limit = bytes_per_token == 4 ? 0xffffffffull : (1ull << (8 * bytes_per_token)) - 1;
  for (int64_t token : tokens) {
    if (token < 0 || static_cast<uint64_t>(token) > limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", token, " does not fit in ", bytes_per_token, " bytes"));
    }
    uint32_t id = static_cast<uint32_t>(token);
    file.write(reinterpret_cast<const char*>(&id), bytes_per_token);
  }
  if (labels) {
    for (int64_t label : *labels) {
      int32_t value = static_cast<int32_t>(label);
      file.write(reinterpret_cast<const char*>(&value), 4);
    }
  }
  if (!file) return absl::DataLossError(absl::StrCat("error writing '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<BatchReader> BatchReader::Create(TokenData data, int64_t micro_batch,
                                                int64_t seq_len) {
  BatchReader reader;
  reader.window_ = micro_batch * seq_len;
  if (static_cast<int64_t>(data.tokens.size()) < reader.window_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data has ", data.tokens.size(), " tokens, fewer than one micro-batch (",
        micro_batch, " x ", seq_len, " = ", reader.window_, ")"));
  }
  reader.windows_ = static_cast<int64_t>(data.tokens.size()) / reader.window_;
  reader.data_ = std::move(data);
  return reader;
}

void BatchReader::Read(int64_t index, int64_t* tokens, int64_t* labels) const {
  int64_t start = (index % windows_) * window_;
  const std::vector<int64_t>& source_labels =
      data_.labels.empty() ? data_.tokens : data_.labels;
  std::memcpy(tokens, data_.tokens.data() + start, window_ * sizeof(int64_t));
  std::memcpy(labels, source_labels.data() + start, window_ * sizeof(int64_t));
}

}  // namespace veomni::runtime
