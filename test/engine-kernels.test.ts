import assert from "node:assert/strict";
import { test } from "node:test";
import { engine } from "../src/engine/index.js";

test("engine: every kernel's backward equals float64 central finite differences", () => {
  const results = engine().kernelGradchecks();
  assert.ok(results.length >= 8);
  for (const r of results) {
    console.log(
      `  ${r.kernel}: ${r.checked} inputs, worst abs err ${r.maxAbsErr.toExponential(2)}, rel ${r.maxRelErr.toExponential(2)}`,
    );
    assert.ok(r.checked > 0, r.kernel);
    assert.ok(r.maxRelErr < 1e-7, `${r.kernel}: relative error ${r.maxRelErr}`);
  }
});
