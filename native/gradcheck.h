// Each kernel's backward against central finite differences, in double precision (run by the tests).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dno {

struct GradcheckResult {
  std::string kernel;
  int64_t checked;     // input elements differentiated numerically
  double max_abs_err;  // max |analytic - numeric|
  double max_rel_err;  // max_abs_err / max |numeric|
};

std::vector<GradcheckResult> kernel_gradchecks();

}  // namespace dno
