#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Outcome of reading one sequence with the strict (RFC 3629) rules.
struct StrictRead {
  enum Kind { kValid, kIncomplete, kInvalid } kind;
  size_t length;  // kValid: sequence length; kInvalid: maximal ill-formed subpart
};

// Reads the sequence that starts at bytes[pos]. Byte ranges from the Unicode
// standard, table 3-7 ("well-formed UTF-8 byte sequences").
StrictRead ReadStrict(std::string_view bytes, size_t pos) {
  const auto b0 = static_cast<uint8_t>(bytes[pos]);
  if (b0 < 0x80) return {StrictRead::kValid, 1};
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {StrictRead::kInvalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (pos + i >= bytes.size()) return {StrictRead::kIncomplete, i};
    const auto b = static_cast<uint8_t>(bytes[pos + i]);
    const bool ok = (i == 1) ? (b >= lo && b <= hi) : IsContinuation(b);
    if (!ok) return {StrictRead::kInvalid, i};
  }
  return {StrictRead::kValid, need};
}

}  // namespace

size_t Utf8LengthFromLead(uint8_t lead) {
  static constexpr size_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

std::vector<uint32_t> DecodeUtf8Lenient(std::string_view text) {
  std::vector<uint32_t> cpts;
  cpts.reserve(text.size());
  size_t pos = 0;
  const size_t n = text.size();
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  auto cont = [&](size_t i) { return i < n && IsContinuation(byte(i)); };
  while (pos < n) {
    const uint8_t b0 = byte(pos);
    if (b0 < 0x80) {
      cpts.push_back(b0);
      pos += 1;
    } else if ((b0 & 0x40) == 0) {  // stray continuation byte
      cpts.push_back(kReplacementChar);
      pos += 1;
    } else if ((b0 & 0x20) == 0) {
      if (cont(pos + 1)) {
        cpts.push_back(((b0 & 0x1Fu) << 6) | (byte(pos + 1) & 0x3Fu));
        pos += 2;
      } else {
        cpts.push_back(kReplacementChar);
        pos += 1;
      }
    } else if ((b0 & 0x10) == 0) {
      if (cont(pos + 1) && cont(pos + 2)) {
        cpts.push_back(((b0 & 0x0Fu) << 12) | ((byte(pos + 1) & 0x3Fu) << 6) |
                       (byte(pos + 2) & 0x3Fu));
        pos += 3;
      } else {
        cpts.push_back(kReplacementChar);
        pos += 1;
      }
    } else if ((b0 & 0x08) == 0) {
      if (cont(pos + 1) && cont(pos + 2) && cont(pos + 3)) {
        cpts.push_back(((b0 & 0x07u) << 18) | ((byte(pos + 1) & 0x3Fu) << 12) |
                       ((byte(pos + 2) & 0x3Fu) << 6) | (byte(pos + 3) & 0x3Fu));
        pos += 4;
      } else {
        cpts.push_back(kReplacementChar);
        pos += 1;
      }
    } else {
      cpts.push_back(kReplacementChar);
      pos += 1;
    }
  }
  return cpts;
}

void AppendUtf8(uint32_t cpt, std::string* out) {
  if (cpt > 0x10FFFF) cpt = kReplacementChar;
  if (cpt <= 0x7F) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out->push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out->push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

size_t CompleteUtf8PrefixLength(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const StrictRead r = ReadStrict(bytes, pos);
    if (r.kind == StrictRead::kIncomplete) return pos;
    pos += r.length;
  }
  return pos;
}

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const StrictRead r = ReadStrict(bytes, pos);
    if (r.kind == StrictRead::kValid) {
      out.append(bytes.substr(pos, r.length));
    } else {
      AppendUtf8(kReplacementChar, &out);
    }
    pos += r.length;
  }
  return out;
}

}  // namespace restkv::engine
