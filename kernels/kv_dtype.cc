#include "kernels/kv_dtype.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/fp16.h"

namespace restkv::kernels {

std::string_view KvDtypeName(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return "f32";
    case KvDtype::kF16:
      return "f16";
    case KvDtype::kBf16:
      return "bf16";
    case KvDtype::kQ8_0:
      return "q8_0";
  }
  return "?";
}

std::optional<KvDtype> KvDtypeFromName(std::string_view name) {
  for (KvDtype d : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0}) {
    if (name == KvDtypeName(d)) return d;
  }
  return std::nullopt;
}

int32_t KvElementBytes(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return 4;
    case KvDtype::kF16:
    case KvDtype::kBf16:
      return 2;
    case KvDtype::kQ8_0:
      return 1;
  }
  return 4;
}

double KvUnitRoundoff(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return 0.0;
    case KvDtype::kF16:
      return 1.0 / 2048;
    case KvDtype::kBf16:
      return 1.0 / 256;
    case KvDtype::kQ8_0:
      return 1.0 / 254;
  }
  return 0.0;
}

void EncodeKvRow(KvDtype dtype, const float* x, int32_t d, void* dst, float* scale) {
  switch (dtype) {
    case KvDtype::kF32:
      std::memcpy(dst, x, static_cast<size_t>(d) * sizeof(float));
      return;
    case KvDtype::kF16: {
      FloatToFp16Row(x, static_cast<uint16_t*>(dst), d);
      return;
    }
    case KvDtype::kBf16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int32_t i = 0; i < d; ++i) h[i] = FloatToBf16(x[i]);
      return;
    }
    case KvDtype::kQ8_0: {
      float amax = 0.0f;
      for (int32_t i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[i]));
      // The same two correctly rounded operations as the CUDA StoreKv, so
      // both backends store identical bytes for identical inputs.
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      auto* q = static_cast<int8_t*>(dst);
      for (int32_t i = 0; i < d; ++i) {
        const float r = std::rint(x[i] * inv);
        q[i] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
      }
      *scale = amax / 127.0f;
      return;
    }
  }
}

void DecodeKvRow(KvDtype dtype, const void* src, float scale, int32_t d, float* x) {
  switch (dtype) {
    case KvDtype::kF32:
      std::memcpy(x, src, static_cast<size_t>(d) * sizeof(float));
      return;
    case KvDtype::kF16: {
      Fp16ToFloatRow(static_cast<const uint16_t*>(src), x, d);
      return;
    }
    case KvDtype::kBf16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int32_t i = 0; i < d; ++i) x[i] = Bf16ToFloat(h[i]);
      return;
    }
    case KvDtype::kQ8_0: {
      const auto* q = static_cast<const int8_t*>(src);
      for (int32_t i = 0; i < d; ++i) x[i] = static_cast<float>(q[i]) * scale;
      return;
    }
  }
}

}  // namespace restkv::kernels
