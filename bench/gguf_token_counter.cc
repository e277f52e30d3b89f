#include "bench/gguf_token_counter.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_gguf.h"

namespace restkv::bench {

absl::StatusOr<LocalTokenizer> LoadGgufTokenizer(const std::string& path) {
  auto prefix = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("--tokenizer ", path, ": ", s.message()));
  };
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file = engine::GgufFile::Open(path);
  if (!file.ok()) return prefix(file.status());
  absl::StatusOr<engine::TokenizerData> data = engine::TokenizerDataFromGguf(**file);
  if (!data.ok()) return prefix(data.status());
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tok =
      engine::Tokenizer::Create(*std::move(data));
  if (!tok.ok()) return prefix(tok.status());
  LocalTokenizer out;
  if (auto arch = (*file)->GetString("general.architecture"); arch.ok()) {
    if (auto n = (*file)->GetInt(*arch + ".context_length"); n.ok() && *n > 0 && *n < (1 << 30))
      out.context_length = static_cast<int32_t>(*n);
  }
  // The file's mapping is not needed once the tokenizer has copied its tables.
  std::shared_ptr<const engine::Tokenizer> shared(std::move(*tok));
  out.count = [shared](const std::string& text) -> absl::StatusOr<int32_t> {
    return static_cast<int32_t>(
        shared->Encode(text, /*add_special=*/false, /*parse_special=*/false).size());
  };
  return out;
}

}  // namespace restkv::bench
