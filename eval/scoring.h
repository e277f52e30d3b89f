// RULER's answer scorers (its evaluate.py semantics), case-insensitive
// substring matches on the prediction as generated:
//   string_match_all:  fraction of the references found in the prediction
//   string_match_part: 1 if any reference is found, else 0
// Both return a value in [0, 1] (RULER reports x100). A near-miss such as a
// truncated number ("730" for "7304") is not a match; extra surrounding text is.
#pragma once

#include <string>
#include <vector>

namespace restkv::eval {

double StringMatchAll(const std::string& prediction, const std::vector<std::string>& references);
double StringMatchPart(const std::string& prediction, const std::vector<std::string>& references);

}  // namespace restkv::eval
