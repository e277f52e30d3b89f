// Reads TokenizerData from the tokenizer.* metadata of a GGUF file, with
// llama.cpp's defaults for keys a file leaves out:
//
//   key (tokenizer.ggml.*)   "llama" (SPM) default        "gpt2" (BPE) default
//   bos/eos/unknown id       1 / 2 / 0                    11 / 11 / none
//   add_bos_token            true                         false (true for the llama3 family)
//   add_eos_token            false                        false
//   add_space_prefix         true                         false
//
// A special-token id outside the vocabulary is ignored (the default stays;
// a default outside the vocabulary becomes "none"), as llama.cpp does.
// Scores may be stored as float32 or int32. Validation of the vocabulary
// itself is left to Tokenizer::Create.
#pragma once

#include "absl/status/statusor.h"
#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

// InvalidArgument when tokenizer.ggml.model or tokenizer.ggml.tokens is
// missing, when a "gpt2" file has no merges, or when a key has the wrong
// type; NotFound is never returned for optional keys.
absl::StatusOr<TokenizerData> TokenizerDataFromGguf(const GgufFile& file);

}  // namespace restkv::engine
