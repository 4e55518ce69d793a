import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { builtinGame } from "../src/game/builtins.js";
import { gameToJson } from "../src/game/game.js";

const bin = new URL("../../bin/dno.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "dno-game-"));

function dno(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("dno game --json prints one object whose `final` holds the convergence numbers", () => {
  const r = dno("game", "--builtin", "rps", "--mode", "exact", "--iterations", "200", "--json");
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.iterations.length, 200);
  for (const key of ["exploitability_mixture", "exploitability_last", "nash_distance_mixture"]) {
    assert.equal(typeof out.final[key], "number", key);
  }
  assert.ok(out.final.exploitability_mixture < 0.01);
});

test("dno game --game file.json gives the same run as the built-in it was written from", () => {
  const file = join(dir, "random.json");
  writeFileSync(file, JSON.stringify(gameToJson(builtinGame("random"))));
  const fromFile = JSON.parse(dno("game", "--game", file, "--iterations", "50", "--json").stdout);
  const builtin = JSON.parse(dno("game", "--builtin", "random", "--iterations", "50", "--json").stdout);
  assert.deepEqual(fromFile.final, builtin.final);
});

test("dno game --builtin rps prints its table, and --plot writes an SVG", () => {
  const svg = join(dir, "plot.svg");
  const r = dno("game", "--builtin", "rps", "--plot", svg);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P\(pi_t\+1 > pi_t\)\s+exploit last\s+exploit mixture/);
  assert.match(r.stdout, /^\s*200\s/m);
  assert.match(readFileSync(svg, "utf8"), /^<svg[\s\S]*exploitability/);
});

test("bad games are refused with one line naming the file and the field", () => {
  const cases: [string, unknown, RegExp][] = [
    [
      "asym.json",
      {
        name: "g",
        prompts: [
          {
            id: "x",
            responses: ["a", "b"],
            preference: [
              [0.5, 0.6],
              [0.6, 0.5],
            ],
          },
        ],
      },
      /asym\.json: prompts\[0\]\.preference\[0\]\[1\]: P\[0\]\[1\] \+ P\[1\]\[0\] = 1\.2, but P \+ P\^T must be 1/,
    ],
    [
      "diag.json",
      {
        name: "g",
        prompts: [
          {
            id: "x",
            responses: ["a", "b"],
            preference: [
              [0.4, 0.5],
              [0.5, 0.5],
            ],
          },
        ],
      },
      /diag\.json: prompts\[0\]\.preference\[0\]\[0\]: .* \(the diagonal is 1\/2\)/,
    ],
    [
      "shape.json",
      { name: "g", prompts: [{ id: "x", responses: ["a", "b"], preference: [[0.5, 0.5], [0.5]] }] },
      /shape\.json: prompts\[0\]\.preference\[1\]: has 1 entries, expected 2/,
    ],
    [
      "range.json",
      {
        name: "g",
        prompts: [
          {
            id: "x",
            responses: ["a", "b"],
            preference: [
              [0.5, 1.5],
              [-0.5, 0.5],
            ],
          },
        ],
      },
      /range\.json: prompts\[0\]\.preference\[0\]\[1\]: 1\.5 is not a probability/,
    ],
    [
      "initial.json",
      {
        name: "g",
        prompts: [
          {
            id: "x",
            responses: ["a", "b"],
            preference: [
              [0.5, 0.5],
              [0.5, 0.5],
            ],
            initial: [0.2, 0.2],
          },
        ],
      },
      /initial\.json: prompts\[0\]\.initial: sums to 0\.4/,
    ],
    [
      "fields.json",
      { name: "g", prompts: [{ id: "x", preference: [] }] },
      /fields\.json: prompts\[0\]\.responses: /,
    ],
    ["text.json", "{not json", /text\.json: invalid JSON/],
  ];
  for (const [name, content, pattern] of cases) {
    const file = join(dir, name);
    writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
    const r = dno("game", "--game", file);
    assert.equal(r.code, 1, `${name}: exit ${r.code}`);
    assert.match(r.stderr, pattern, name);
    assert.equal(r.stderr.trim().split("\n").length, 1, `${name}: one line, no stack`);
  }
  const missing = dno("game", "--game", join(dir, "nope.json"));
  assert.match(missing.stderr, /nope\.json: cannot read/);
  const beta = dno("game", "--builtin", "rps", "--beta", "-1");
  assert.equal(beta.code, 1);
  assert.match(beta.stderr, /^dno: error: .*--beta must be a number in \(0, 1000000\]/);
  assert.notEqual(dno("game", "--builtin", "nope").code, 0);
});
