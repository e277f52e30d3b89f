// The server's one JSON type, for request and response bodies alike.
//
// Ordered: an object keeps its keys in the order they were written. On the
// response side that is the field order OpenAI documents and sends (id,
// object, created, model, choices, usage). On the request side the order is
// meaning: a tool's parameters and a json_schema's properties reach the chat
// template and the grammar engine in the client's order, so the model is
// taught, and made to write, the keys in that order (as vLLM, whose Python
// dicts keep insertion order). Lookups are linear in an object's size, which
// is small in every body we take.
#pragma once

#include "nlohmann/json.hpp"

namespace restkv::server {

using Json = nlohmann::ordered_json;

}  // namespace restkv::server
