import assert from "node:assert/strict";
import { test } from "node:test";
import { sigmoid } from "../src/core/prob.js";
import { Rng } from "../src/core/rng.js";
import { builtinGame } from "../src/game/builtins.js";
import { NASH_CERTIFICATE, solveNash } from "../src/game/nash.js";
import { exploitability } from "../src/game/policy.js";

const matrix = (rows: number[][]) => rows.map((r) => Float64Array.from(r));

/** An antisymmetric 3-cycle: paper beats rock by a, scissors beats paper by b, rock beats scissors by c. */
function weightedRps(a: number, b: number, c: number): Float64Array[] {
  return matrix([
    [0.5, 0.5 - a, 0.5 + c],
    [0.5 + a, 0.5, 0.5 - b],
    [0.5 - c, 0.5 + b, 0.5],
  ]);
}

function assertPolicy(actual: Float64Array, expected: number[], what: string): void {
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-9, `${what}: ${[...actual]} vs ${expected}`);
  }
}

test("LP Nash solutions match known equilibria and are certified", () => {
  const cases: [string, Float64Array[], number[]][] = [
    ["rps", builtinGame("rps").prompts[0]!.preference, [1 / 3, 1 / 3, 1 / 3]],
    // x_rock ∝ b, x_paper ∝ c, x_scissors ∝ a makes every row of A x zero.
    ["weighted rps", weightedRps(0.1, 0.3, 0.5), [0.3 / 0.9, 0.5 / 0.9, 0.1 / 0.9]],
    ["bradley-terry", builtinGame("bradley-terry").prompts[0]!.preference, [1, 0, 0, 0, 0]],
    ["condorcet", builtinGame("condorcet").prompts[0]!.preference, [1, 0, 0, 0]],
    [
      "two responses",
      matrix([
        [0.5, 0.3],
        [0.7, 0.5],
      ]),
      [0, 1],
    ],
    // Rock-paper-scissors-lizard-Spock: uniform over all five.
    [
      "rpsls",
      matrix([
        [0.5, 0, 1, 1, 0],
        [1, 0.5, 0, 0, 1],
        [0, 1, 0.5, 1, 0],
        [0, 1, 0, 0.5, 1],
        [1, 0, 1, 0, 0.5],
      ]),
      [0.2, 0.2, 0.2, 0.2, 0.2],
    ],
  ];
  for (const [name, p, expected] of cases) {
    const sol = solveNash(p);
    assertPolicy(sol.policy, expected, name);
    assert.ok(sol.exploitability <= NASH_CERTIFICATE, `${name}: ${sol.exploitability}`);
    assert.ok(Math.abs(sol.policy.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  }
});

test("LP certifies random games, including degenerate ones with ties and many equilibria", () => {
  for (let seed = 0; seed < 40; seed++) {
    const rng = Rng.derive(seed, "nash-test");
    const n = 2 + rng.int(14);
    const p = Array.from({ length: n }, () => new Float64Array(n).fill(0.5));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        // a third of the games use coarse entries, so ties and degenerate pivots happen
        p[i]![j] = seed % 3 === 0 ? rng.int(3) / 2 : rng.float();
        p[j]![i] = 1 - p[i]![j]!;
      }
    }
    const sol = solveNash(p);
    assert.ok(sol.exploitability <= NASH_CERTIFICATE, `seed ${seed}: ${sol.exploitability}`);
    assert.equal(exploitability(p, sol.policy), sol.exploitability);
    assert.ok(sol.policy.every((v) => v >= 0));
  }
  const ties = solveNash(
    matrix([
      [0.5, 0.5],
      [0.5, 0.5],
    ]),
  );
  assert.ok(ties.exploitability <= NASH_CERTIFICATE);
  const bt = [0.3, -1, 2, 0.7];
  assertPolicy(
    solveNash(bt.map((a) => Float64Array.from(bt, (b) => sigmoid(a - b)))).policy,
    [0, 0, 1, 0],
    "bt",
  );
});
