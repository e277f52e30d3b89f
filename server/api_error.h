// ApiError: one failure as the OpenAI API reports it, and the single mapping
// from absl::Status codes to HTTP statuses.
//
// Inside the server every failure travels as an absl::Status. A validation
// error may carry the name of the offending request field ("param") as a
// status payload (InvalidParam); at the boundary ApiErrorFromStatus turns the
// status into the body OpenAI clients expect:
//
//   {"error": {"message": "...", "type": "invalid_request_error",
//              "param": "temperature" | null, "code": "..." | null}}
//
// Code mapping (HTTP status, OpenAI type, code):
//   InvalidArgument, FailedPrecondition, OutOfRange  400 invalid_request_error
//   Unauthenticated                                  401 invalid_request_error invalid_api_key
//   NotFound                                         404 invalid_request_error (model_not_found
//                                                        when param is "model")
//   ResourceExhausted                                429 rate_limit_error  queue_full
//   ResourceExhausted marked engine::KvCapacityError 413 invalid_request_error
//                                                        kv_capacity_exceeded
//   Unavailable                                      503 service_unavailable
//   DeadlineExceeded                                 504 timeout
//   anything else                                    500 server_error
// 413 (body too large), 405 and 404 for unknown routes are produced by the
// HTTP layer through MakeApiError directly.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/json.h"

namespace restkv::server {

struct ApiError {
  int http_status = 500;
  std::string type;  // OpenAI error type, e.g. "invalid_request_error"
  std::string message;
  std::string param;  // the request field at fault; "" => null
  std::string code;   // machine-readable code; "" => null
};

// `status` with `param` attached as a payload (any code).
absl::Status WithParam(absl::Status status, std::string_view param);
// InvalidArgument carrying `param` (a JSON field name such as "top_p" or
// "messages[1].content") as a payload, read back by ParamOf.
absl::Status InvalidParam(std::string_view param, std::string_view message);
// The param payload of `status`, or "" when it has none.
std::string ParamOf(const absl::Status& status);

// REQUIRES: !status.ok().
ApiError ApiErrorFromStatus(const absl::Status& status);
ApiError MakeApiError(int http_status, std::string message, std::string param = "",
                      std::string code = "");

// {"error": {...}} as above.
Json ApiErrorJson(const ApiError& error);

// Serialises any JSON value for the wire: compact, and invalid UTF-8 in
// strings (token pieces can cut characters) replaced by U+FFFD instead of
// throwing.
std::string DumpJson(const Json& value);

}  // namespace restkv::server
