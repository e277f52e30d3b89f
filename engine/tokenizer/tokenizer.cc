#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/spm_tokenizer.h"

namespace restkv::engine {
namespace {

// llama.cpp's llama_token_attr bits (the subset the tokenizer looks at).
enum : uint8_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
};

uint8_t AttrFromType(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    case TokenType::kUndefined:
      break;
  }
  return kAttrUndefined;
}

// Token texts that end generation in llama.cpp (llama-vocab.cpp builds
// special_eog_ids from this list, the FIM pad/repo/separator tokens, EOS and
// EOT). Matching tokens are also forced to be control tokens, as there.
constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
    // FIM pad / repo / file separator tokens
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
};

}  // namespace

Tokenizer::Tokenizer(TokenizerData data) : data_(std::move(data)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(TokenizerData data) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer(std::move(data)));
  RESTKV_RETURN_IF_ERROR(tok->Init());
  return tok;
}

absl::Status Tokenizer::Init() {
  if (data_.model == "llama") {
    is_spm_ = true;
  } else if (data_.model != "gpt2") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported tokenizer model (tokenizer.ggml.model) '", data_.model,
                     "'; supported: gpt2 (byte-level BPE), llama (SentencePiece BPE)"));
  }
  const size_t n = data_.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return absl::InvalidArgumentError("vocabulary too large");
  if (!data_.token_types.empty() && data_.token_types.size() < n) {
    return absl::InvalidArgumentError(
        absl::StrCat("token_type has ", data_.token_types.size(), " entries for ", n, " tokens"));
  }
  if (!data_.scores.empty() && data_.scores.size() < n) {
    return absl::InvalidArgumentError(
        absl::StrCat("scores has ", data_.scores.size(), " entries for ", n, " tokens"));
  }
  const std::pair<const char*, int32_t> ids[] = {{"bos", data_.bos_id},
                                                 {"eos", data_.eos_id},
                                                 {"eot", data_.eot_id},
                                                 {"unk", data_.unk_id},
                                                 {"pad", data_.pad_id}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " token id ", id, " is outside the vocabulary [0, ", n, ")"));
    }
  }
  if (data_.add_bos && data_.bos_id < 0) {
    return absl::InvalidArgumentError("add_bos is set but there is no BOS token id");
  }
  if (data_.add_eos && data_.eos_id < 0) {
    return absl::InvalidArgumentError("add_eos is set but there is no EOS token id");
  }

  token_to_id_.reserve(n);
  attrs_.resize(n);
  for (size_t id = 0; id < n; ++id) {
    std::string& text = data_.tokens[id];
    if (text.empty()) text = absl::StrCat("[EMPTY_", id, "]");
    const auto [it, inserted] = token_to_id_.emplace(text, static_cast<int32_t>(id));
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate token '", text, "' has ids ", it->second, " and ", id));
    }
    attrs_[id] =
        data_.token_types.empty() ? uint8_t{kAttrNormal} : AttrFromType(data_.token_types[id]);
  }

  for (const std::string_view text : kEndOfGenerationTexts) {
    if (const auto it = token_to_id_.find(absl::string_view(text.data(), text.size()));
        it != token_to_id_.end()) {
      eog_ids_.insert(it->second);
      attrs_[it->second] |= kAttrControl;
    }
  }
  if (data_.eos_id >= 0) eog_ids_.insert(data_.eos_id);
  if (data_.eot_id >= 0) eog_ids_.insert(data_.eot_id);

  for (size_t id = 0; id < n; ++id) {
    if (attrs_[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      special_by_length_.push_back(static_cast<int32_t>(id));
    }
  }
  std::stable_sort(special_by_length_.begin(), special_by_length_.end(), [&](int32_t a, int32_t b) {
    return data_.tokens[a].size() > data_.tokens[b].size();
  });

  if (is_spm_) {
    spm_ = std::make_unique<SpmTokenizer>(&token_to_id_, &data_.scores, data_.unk_id);
  } else {
    RESTKV_ASSIGN_OR_RETURN(const PreTokenizerConfig pre, PreTokenizerConfigFromName(data_.pre));
    RESTKV_ASSIGN_OR_RETURN(bpe_, BpeTokenizer::Create(&token_to_id_, data_.merges, pre));
  }

  pieces_.resize(n);
  for (size_t id = 0; id < n; ++id) {
    const std::string& text = data_.tokens[id];
    const uint8_t attr = attrs_[id];
    if (attr & (kAttrControl | kAttrUnknown | kAttrUserDefined)) {
      pieces_[id] = text;
    } else if (attr & kAttrNormal) {
      pieces_[id] =
          is_spm_ ? SpmTokenizer::UnescapeSpaces(text) : BpeTokenizer::DecodeTokenText(text);
    } else if (attr & kAttrByte) {
      // BYTE tokens are "<0xNN>" in both kinds of vocabulary.
      if (const auto byte = SpmTokenizer::ParseByteToken(text)) {
        pieces_[id] = std::string(1, static_cast<char>(*byte));
      }
    }
  }
  return absl::OkStatus();
}

bool Tokenizer::IsControl(int32_t id) const {
  return IsValidId(id) && (attrs_[id] & (kAttrControl | kAttrUnknown)) != 0;
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view token_text) const {
  const auto it = token_to_id_.find(absl::string_view(token_text.data(), token_text.size()));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  if (!IsValidId(id)) return "";
  if (!render_special && IsControl(id)) return "";
  return pieces_[id];
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = data_.add_space_prefix;
  for (const int32_t id : ids) {
    std::string_view piece;
    if (IsValidId(id) && (render_special || !IsControl(id))) piece = pieces_[id];
    if (strip_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    strip_space = false;
    out.append(piece);
  }
  return out;
}

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text,
                                                      bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const int32_t special : special_by_length_) {
    if (!parse_special && (attrs_[special] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& needle = data_.tokens[special];
    next.clear();
    bool found_any = false;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t begin = f.offset;
      const size_t end = f.offset + f.length;
      while (begin < end) {
        const size_t match = text.substr(0, end).find(needle, begin);
        if (match == std::string_view::npos) break;
        found_any = true;
        if (match > begin) next.push_back({-1, begin, match - begin});
        next.push_back({special, 0, 0});
        begin = match + needle.size();
      }
      if (begin < end) next.push_back({-1, begin, end - begin});
    }
    if (found_any) frags.swap(next);
  }
  return frags;
}

void Tokenizer::EncodePlain(std::string_view text, std::vector<int32_t>* out) const {
  if (is_spm_) {
    spm_->Encode(text, out);
  } else {
    bpe_->Encode(text, out);
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && data_.add_bos) out.push_back(data_.bos_id);
  bool prev_special = true;  // the start of the text counts as "after a special token"
  for (const Fragment& f : Partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view plain = text.substr(f.offset, f.length);
    if (is_spm_ && data_.add_space_prefix && prev_special) {
      std::string spaced = " ";
      spaced.append(plain);
      EncodePlain(spaced, &out);
    } else {
      EncodePlain(plain, &out);
    }
    prev_special = false;
  }
  if (add_special && data_.add_eos) out.push_back(data_.eos_id);
  return out;
}

}  // namespace restkv::engine
