import assert from "node:assert/strict";
import { test } from "node:test";
import { vegaLiteToSvg } from "../src/report/svg.js";

test("vegaLiteToSvg renders a line chart with its title and axis", async () => {
  const svg = await vegaLiteToSvg({
    title: "exploitability",
    data: {
      values: [
        { t: 1, e: 0.5 },
        { t: 2, e: 0.25 },
      ],
    },
    mark: "line",
    encoding: { x: { field: "t", type: "quantitative" }, y: { field: "e", type: "quantitative" } },
  });
  assert.match(svg, /^<svg/);
  assert.match(svg, /exploitability/);
  assert.match(svg, /<path/);
});
