import assert from "node:assert/strict";
import { test } from "node:test";
import { builtinGame } from "../src/game/builtins.js";
import { DEFAULT_GAME_OPTIONS, runGame } from "../src/game/dynamics.js";
import { gamePlotSpec } from "../src/game/report.js";
import { vegaLiteToSvg } from "../src/report/svg.js";

test("the rps plot draws exploitability 0 at the equilibrium, not float noise on a linear axis", async () => {
  const run = runGame(builtinGame("rps"), { ...DEFAULT_GAME_OPTIONS, iterations: 50 });
  const raw = run.iterations.flatMap((r) => [r.exploitability_last, r.exploitability_mixture]);
  assert.ok(
    raw.every((v) => Math.abs(v) < 1e-12),
    "rps starts at its Nash equilibrium",
  );
  const spec = gamePlotSpec(run) as {
    data: { values: { exploitability: number }[] };
    encoding: { y: { scale: { type: string; domain: number[] } } };
  };
  assert.ok(spec.data.values.every((v) => v.exploitability === 0));
  assert.equal(spec.encoding.y.scale.type, "linear");
  assert.deepEqual(spec.encoding.y.scale.domain, [0, 0.5]);
  const svg = await vegaLiteToSvg(gamePlotSpec(run));
  assert.doesNotMatch(svg, /e-1\d/, "no tick label like 1e-15");
});

test("a game away from equilibrium keeps the log scale", () => {
  const run = runGame(builtinGame("random"), { ...DEFAULT_GAME_OPTIONS, iterations: 20 });
  const spec = gamePlotSpec(run) as { encoding: { y: { scale: { type: string } } } };
  assert.equal(spec.encoding.y.scale.type, "log");
});
