// veomni-tokenize: text into a token file with the byte-level tokenizer
// (token id = byte value, vocabulary 256).
//
//   veomni-tokenize input.txt -o tokens.bin

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "runtime/data/TokenFile.h"

ABSL_FLAG(std::string, o, "", "Output token file");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("byte-level tokenizer\n  veomni-tokenize input.txt -o tokens.bin");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "veomni-tokenize: error: %s\n", message.c_str());
    return 1;
  };
  if (positional.size() != 2 || absl::GetFlag(FLAGS_o).empty()) {
    return fail("usage: veomni-tokenize input.txt -o tokens.bin");
  }
  std::ifstream input(positional[1], std::ios::binary);
  if (!input) return fail(absl::StrCat("cannot read '", positional[1], "'"));
  std::vector<int64_t> tokens;
  for (auto it = std::istreambuf_iterator<char>(input); it != std::istreambuf_iterator<char>();
       ++it) {
    tokens.push_back(static_cast<unsigned char>(*it));
  }
  if (tokens.empty()) return fail(absl::StrCat("'", positional[1], "' is empty"));
  auto status = veomni::runtime::WriteTokenFile(absl::GetFlag(FLAGS_o), tokens, nullptr, 1);
  if (!status.ok()) return fail(std::string(status.message()));
  std::printf("%zu tokens (byte-level, vocabulary 256) -> %s\n", tokens.size(),
              absl::GetFlag(FLAGS_o).c_str());
  return 0;
}
