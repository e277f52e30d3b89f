// `restkv bench --tokenizer PATH.gguf`: counts tokens with a local GGUF
// model's own tokenizer (the restkv_tokenizer library: tokenizer.* metadata
// read by the GGUF reader; no engine, no weights used), so prompts of exact
// lengths can be built for targets without /tokenize (vLLM without it
// enabled, llama.cpp's server under another API, a gRPC server).
//
// Counting follows the targets' /tokenize with add_special_tokens false:
// no BOS/EOS, special-token texts not parsed.
//
// Thread safety: the returned counter is const and may be called from any
// thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "bench/prompt_builder.h"

namespace restkv::bench {

struct LocalTokenizer {
  TokenCounter count;
  int32_t context_length = 0;  // <arch>.context_length of the GGUF; 0 when absent
};

// Errors name the file: NotFound, or InvalidArgument for a GGUF without a
// usable tokenizer.
absl::StatusOr<LocalTokenizer> LoadGgufTokenizer(const std::string& path);

}  // namespace restkv::bench
