// UTF-8 helpers shared by the tokenizers and the incremental detokenizer.
//
// Decoding follows llama.cpp's lenient rules on purpose, because token ids
// must match llama.cpp byte for byte on arbitrary input, including broken
// UTF-8: a lead byte takes the continuation bytes its high bits announce
// (no overlong or surrogate checks); a byte that cannot start a sequence, or
// a sequence cut short, becomes U+FFFD and decoding resumes one byte later.
//
// Thread safety: all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace restkv::engine {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length in bytes of the sequence that `lead` starts, judged by its high four
// bits only (1 for ASCII and for stray continuation bytes, 2 for 0xC0-0xDF,
// 3 for 0xE0-0xEF, 4 for 0xF0-0xFF). Used to cut text into characters.
size_t Utf8LengthFromLead(uint8_t lead);

// Decodes `text` into code points with the lenient rules above.
std::vector<uint32_t> DecodeUtf8Lenient(std::string_view text);

// Appends the UTF-8 encoding of `cpt` to `out`. Code points above U+10FFFF
// (lenient decoding of F4 90.. or F5..F7 leads yields them) are written as
// U+FFFD; llama.cpp throws on them and aborts the tokenisation instead.
void AppendUtf8(uint32_t cpt, std::string* out);

// Length of the longest prefix of `bytes` that ends on a character boundary
// and may be followed by more bytes to complete what comes after it: every
// byte before the returned length is either part of a complete well-formed
// sequence or an invalid byte that no later byte can repair. The bytes after
// it (at most 3) are the start of a well-formed sequence that is incomplete.
// Strict here (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF)
// because its output goes to clients that expect valid UTF-8.
size_t CompleteUtf8PrefixLength(std::string_view bytes);

// Returns `bytes` with every ill-formed sequence replaced by U+FFFD, one
// replacement per maximal ill-formed subpart (the WHATWG / Unicode
// "substitution of maximal subparts" practice, as Python's
// bytes.decode(errors="replace") does).
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace restkv::engine
