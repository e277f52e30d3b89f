#include "server/api_error.h"

#include "absl/strings/cord.h"
#include "common/check.h"
#include "engine/capacity_error.h"

namespace restkv::server {
namespace {

// Payload key of the offending field name.
constexpr char kParamPayload[] = "restkv/param";

// Debian's Abseil has its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status WithParam(absl::Status status, std::string_view param) {
  status.SetPayload(kParamPayload, absl::Cord(Sv(param)));
  return status;
}

absl::Status InvalidParam(std::string_view param, std::string_view message) {
  return WithParam(absl::InvalidArgumentError(Sv(message)), param);
}

std::string ParamOf(const absl::Status& status) {
  auto payload = status.GetPayload(kParamPayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

ApiError MakeApiError(int http_status, std::string message, std::string param, std::string code) {
  ApiError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  switch (http_status) {
    case 429:
      e.type = "rate_limit_error";
      break;
    case 503:
      e.type = "service_unavailable";
      break;
    case 500:
      e.type = "server_error";
      break;
    case 504:
      e.type = "timeout";
      break;
    default:
      e.type = "invalid_request_error";
      break;
  }
  return e;
}

ApiError ApiErrorFromStatus(const absl::Status& status) {
  RESTKV_CHECK(!status.ok());
  std::string message(status.message());
  std::string param = ParamOf(status);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return MakeApiError(400, std::move(message), std::move(param));
    case absl::StatusCode::kUnauthenticated:
      return MakeApiError(401, std::move(message), std::move(param), "invalid_api_key");
    case absl::StatusCode::kNotFound: {
      std::string code = param == "model" ? "model_not_found" : "";
      return MakeApiError(404, std::move(message), std::move(param), std::move(code));
    }
    case absl::StatusCode::kResourceExhausted:
      if (engine::IsKvCapacityError(status)) {
        return MakeApiError(413, std::move(message), std::move(param), "kv_capacity_exceeded");
      }
      return MakeApiError(429, std::move(message), std::move(param), "queue_full");
    case absl::StatusCode::kUnavailable:
      return MakeApiError(503, std::move(message), std::move(param));
    case absl::StatusCode::kDeadlineExceeded:
      return MakeApiError(504, std::move(message), std::move(param));
    default:
      return MakeApiError(500, std::move(message), std::move(param));
  }
}

Json ApiErrorJson(const ApiError& error) {
  Json inner = {
      {"message", error.message},
      {"type", error.type},
      {"param", error.param.empty() ? Json(nullptr) : Json(error.param)},
      {"code", error.code.empty() ? Json(nullptr) : Json(error.code)},
  };
  return {{"error", std::move(inner)}};
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace restkv::server
