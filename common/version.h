// The restkv release, as `restkv --version` and GET /version report it.
#pragma once

namespace restkv {

inline constexpr char kRestkvVersion[] = "0.1.0";

}  // namespace restkv
