import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { builtinGame } from "../src/game/builtins.js";
import { DEFAULT_GAME_OPTIONS, fitBradleyTerry, type GameRunOptions, runGame } from "../src/game/dynamics.js";
import { type Game, parseGame } from "../src/game/game.js";
import { totalVariation } from "../src/game/policy.js";

const exact = (o: Partial<GameRunOptions> = {}): GameRunOptions => ({ ...DEFAULT_GAME_OPTIONS, ...o });

const RPS = [
  [0.5, 0, 1],
  [1, 0.5, 0],
  [0, 1, 0.5],
];
/** Rock-paper-scissors started away from its (uniform) equilibrium. */
const rpsOffCenter = (): Game =>
  parseGame(
    {
      name: "rps-off-center",
      prompts: [
        { id: "rps", responses: ["rock", "paper", "scissors"], preference: RPS, initial: [0.6, 0.3, 0.1] },
      ],
    },
    "test",
  );

function randomGame(seed: number, n: number): Game {
  const rng = Rng.derive(seed, "random-game-test");
  const p = Array.from({ length: n }, () => new Array<number>(n).fill(0.5));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      p[i]![j] = rng.float();
      p[j]![i] = 1 - p[i]![j]!;
    }
  }
  return parseGame(
    { name: `random-${seed}`, prompts: [{ id: "x", responses: p.map((_, i) => `y${i}`), preference: p }] },
    "test",
  );
}

test("exact DNO: the uniform mixture's exploitability < 0.01 within 200 iterations on rps and the random game", () => {
  const rps = runGame(builtinGame("rps"), exact());
  assert.ok(rps.final.exploitability_mixture < 0.01, `rps ${rps.final.exploitability_mixture}`);
  const random = runGame(builtinGame("random"), exact());
  assert.ok(random.initial.exploitability > 0.1, "the random game starts far from its equilibrium");
  assert.ok(random.final.exploitability_mixture < 0.01, `random ${random.final.exploitability_mixture}`);
  // Off the built-in instance: the median over nine random 5-response games, each far from uniform at pi_1.
  const finals = Array.from(
    { length: 9 },
    (_, s) => runGame(randomGame(s, 5), exact()).final.exploitability_mixture,
  );
  finals.sort((a, b) => a - b);
  assert.ok(finals[4]! < 0.01, `median ${finals[4]} of ${finals}`);
  // rps from (0.6, 0.3, 0.1): the last iterate cycles outward, the mixture still closes in.
  const off = runGame(rpsOffCenter(), exact());
  assert.ok(
    Math.abs(off.initial.exploitability - 0.25) < 1e-12,
    "paper beats (0.6, 0.3, 0.1) with probability 3/4",
  );
  assert.ok(off.final.exploitability_mixture < 0.03, `rps off-center ${off.final.exploitability_mixture}`);
  assert.ok(off.final.exploitability_last > 0.2, "the last iterate does not converge without regularisation");
});

test("exact DNO improves monotonically: P(pi_t+1 > pi_t) >= 1/2 at every iteration", () => {
  const games = [
    builtinGame("rps"),
    builtinGame("random"),
    builtinGame("condorcet"),
    builtinGame("bradley-terry"),
    rpsOffCenter(),
  ];
  for (const game of games) {
    for (const beta of [0.2, 1, 5]) {
      const run = runGame(game, exact({ beta }));
      for (const r of run.iterations) {
        assert.ok(r.p_improve >= 0.5 - 1e-12, `${game.name} beta ${beta} t ${r.t}: ${r.p_improve}`);
      }
    }
  }
});

test("exact DNO reaches the pure Nash of transitive games and of a Condorcet winner in the last iterate", () => {
  for (const name of ["bradley-terry", "condorcet"]) {
    const run = runGame(builtinGame(name), exact());
    assert.ok(run.final.exploitability_last < 1e-6, `${name}: ${run.final.exploitability_last}`);
    assert.ok(run.final.nash_distance_last < 1e-6);
  }
});

test("the tau-regularised (Nash-MD) variant converges in the last iterate", () => {
  const a = runGame(rpsOffCenter(), exact({ tau: 0.2, iterations: 199 })).final.policies[0]!.last;
  const b = runGame(rpsOffCenter(), exact({ tau: 0.2, iterations: 200 })).final.policies[0]!.last;
  assert.ok(totalVariation(a, b) < 1e-9, `consecutive iterates differ by ${totalVariation(a, b)}`);
  // ... to a regularised equilibrium pulled toward pi_ref = (0.6, 0.3, 0.1), not to the uniform Nash.
  assert.ok(totalVariation(b, [1 / 3, 1 / 3, 1 / 3]) > 0.05);
});

test("DPO with Bradley-Terry labels and a fixed reference stays exploitable on the intransitive game", () => {
  const dpo = runGame(builtinGame("random"), exact({ mode: "dpo" }));
  for (const r of dpo.iterations.slice(20)) {
    assert.ok(r.exploitability_last > 0.05, `t ${r.t}: last ${r.exploitability_last}`);
    assert.ok(r.exploitability_mixture > 0.05, `t ${r.t}: mixture ${r.exploitability_mixture}`);
  }
  const dno = runGame(builtinGame("random"), exact({ mode: "sampled" }));
  assert.ok(
    dno.final.exploitability_mixture < dpo.final.exploitability_mixture / 3,
    `sampled DNO ${dno.final.exploitability_mixture} vs DPO ${dpo.final.exploitability_mixture}`,
  );
});

test("the Bradley-Terry fit recovers the scores of a Bradley-Terry game", () => {
  const s = fitBradleyTerry(builtinGame("bradley-terry").prompts[0]!.preference);
  const truth = [2, 1, 0.5, 0, -1];
  const shift = s[0]! - truth[0]!;
  for (const [i, v] of truth.entries())
    assert.ok(Math.abs(s[i]! - shift - v) < 0.02, `s[${i}] = ${s[i]! - shift}`);
});

test("sampled modes are deterministic per seed and all run", () => {
  const game = builtinGame("random");
  for (const mode of ["sampled", "prct", "dpo", "sppo", "ipo"] as const) {
    const o = exact({ mode, iterations: 8, steps: 20 });
    const a = runGame(game, o);
    assert.deepEqual(runGame(game, o), a, mode);
    assert.notDeepEqual(runGame(game, { ...o, seed: 1 }).final, a.final, `${mode}: the seed matters`);
    assert.ok(a.iterations.every((r) => r.loss === null || Number.isFinite(r.loss)));
  }
});
