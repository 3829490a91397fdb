// Token files: what veomni-run trains on.
//
// Format, version 1, little-endian:
//   offset  0  char[8]  magic "VOTOKENS"
//           8  u32      version (1)
//          12  u32      bytes per token: 1, 2 or 4 (unsigned ids)
//          16  u64      number of tokens N
//          24  u32      flags; bit 0: a labels section follows the tokens
//          28  u32      reserved, 0
//          32  ...      N token ids
//          ...          if flagged: N int32 labels (-100: no loss here)
// Without a labels section the labels are the tokens themselves (the model
// shifts them, as HF causal LMs do).

#ifndef VEOMNI_RUNTIME_DATA_TOKENFILE_H
#define VEOMNI_RUNTIME_DATA_TOKENFILE_H

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace veomni::runtime {

struct TokenData {
  std::vector<int64_t> tokens;
  std::vector<int64_t> labels;  // empty: use the tokens
};

// Reads and validates a token file; every id must be below `vocab_size`.
absl::StatusOr<TokenData> ReadTokenFile(absl::string_view path, int64_t vocab_size);

absl::Status WriteTokenFile(absl::string_view path, const std::vector<int64_t>& tokens,
                            const std::vector<int64_t>* labels, int bytes_per_token);

// The data as windows of micro_batch x seq_len consecutive tokens; window
// i is window i mod the number of whole windows (a pass is an epoch).
class BatchReader {
 public:
  static absl::StatusOr<BatchReader> Create(TokenData data, int64_t micro_batch,
                                            int64_t seq_len);
  // Fills [micro_batch, seq_len] int64 tokens and labels of window `index`.
  void Read(int64_t index, int64_t* tokens, int64_t* labels) const;
  int64_t windows() const { return windows_; }

 private:
  BatchReader() = default;
  TokenData data_;
  int64_t window_ = 0, windows_ = 0;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_DATA_TOKENFILE_H
