/**
 * AlpacaEval 2.0's leaderboard LC fit (length_controlled_v1: gamed-baseline rows of df_gamed.csv weighted
 * lambda / 2, their instruction difficulty) on synthetic files in AlpacaEval's formats, against an
 * independent float64 computation of the same formula written here (features from the raw files, the L1
 * problem solved by enumerating sign patterns with Newton's method instead of coordinate descent), and,
 * where Debian's python3-sklearn is installed, against scikit-learn's liblinear.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/core/rng.js";
import { gamedDifficulty, readGamedAnnotations } from "../src/eval/alpaca.js";
import { PYTHON } from "./python-reference.js";

const dno = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const sklearnReference = fileURLToPath(new URL("../../test/reference/alpaca_lc_sklearn.py", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "dno-gamed-"));

interface Annotation {
  instruction: string;
  output_1: string;
  output_2: string;
  preference: number | null;
  generator_1: string;
  generator_2: string;
}

const N = 60;
const logistic = (z: number) => 1 / (1 + Math.exp(-z));

/** A model that writes shorter than the baseline and is judged partly on length, like small models are. */
function syntheticFiles(seed: number): { annotations: string; gamed: string; difficultyCsv: string } {
  const rng = new Rng(seed);
  const difficulty = Array.from({ length: N }, () => rng.normal());
  const baselineLength = Array.from({ length: N }, () => 300 + rng.int(1500));
  const annotations: Annotation[] = difficulty.map((d, i) => {
    const modelLength = Math.max(5, Math.round(baselineLength[i]! * (0.15 + 0.6 * rng.float())));
    const z = -1.2 - 0.8 * d + 1.5 * Math.tanh((modelLength - baselineLength[i]!) / 700);
    // Judgments are noisy: the annotator's soft preference scatters around the model's probability.
    const p = logistic(z + 1.5 * rng.normal());
    // Soft preferences in [1, 2] as the weighted annotator writes them, a draw coded 0, a missing one.
    const preference = i === 7 ? null : i === 11 ? 0 : 1 + Math.round(p * 1e6) / 1e6;
    return {
      instruction: `instruction ${i} ✓`,
      output_1: "b".repeat(baselineLength[i]!),
      output_2: "é".repeat(modelLength),
      preference,
      generator_1: "gpt4_1106_preview",
      generator_2: "tiny-model",
    };
  });
  // df_gamed.csv as pandas writes it: an unnamed index column first, booleans as True/False.
  const lines = [",index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline,model"];
  let row = 0;
  for (const [model, shift] of [
    ["gpt4_1106_preview_verbose", -1.1],
    ["gpt4_1106_preview_concise", 0.9],
  ] as const) {
    for (let i = 0; i < N; i++) {
      const std = shift + 0.5 * rng.normal();
      const p = logistic(-0.3 * difficulty[i]! - 1.4 * Math.tanh(std) + rng.normal());
      const cell = i % 17 === 5 ? "" : String(Math.round(p * 1e8) / 1e8);
      lines.push(`${row++},${i},${cell},${std},${difficulty[i]},False,${model}`);
    }
  }
  const difficultyCsv = ["index,instruction_difficulty", ...difficulty.map((d, i) => `${i},${d}`)].join("\n");
  return {
    annotations: JSON.stringify(annotations),
    gamed: `${lines.join("\n")}\n`,
    difficultyCsv: `${difficultyCsv}\n`,
  };
}

// ---- The independent computation --------------------------------------------------------------------

interface Design {
  x: number[][];
  p: number[];
  s: number[];
}

function designFromFiles(annotationsText: string, gamedText: string): { fit: Design; difficulty: number[] } {
  const annotations = JSON.parse(annotationsText) as Annotation[];
  const [header, ...rows] = gamedText
    .trim()
    .split("\n")
    .map((l) => l.split(","));
  const at = (name: string) => header!.indexOf(name);
  const difficultyOf = new Map<number, number>();
  for (const r of rows) {
    const index = Number(r[at("index")]);
    if (!difficultyOf.has(index)) difficultyOf.set(index, Number(r[at("instruction_difficulty")]));
  }
  const fit: Design = { x: [], p: [], s: [] };
  for (const r of rows) {
    if (r[at("preference")] === "") continue;
    const notGamed = r[at("not_gamed_baseline")] === "True";
    fit.x.push([
      Math.tanh(Number(r[at("std_delta_len")])),
      Number(r[at("instruction_difficulty")]),
      notGamed ? 1 : 0,
    ]);
    fit.p.push(Number(r[at("preference")]));
    fit.s.push(notGamed ? 1 : 0.2 / 2);
  }
  const delta = annotations.map((a) => Array.from(a.output_1).length - Array.from(a.output_2).length);
  const m = delta.reduce((a, b) => a + b, 0) / delta.length;
  const sd = Math.sqrt(delta.reduce((a, b) => a + (b - m) ** 2, 0) / (delta.length - 1));
  const difficulty = annotations.map((_, i) => difficultyOf.get(i)!);
  annotations.forEach((a, i) => {
    if (a.preference === null) return;
    fit.x.push([Math.tanh(delta[i]! / sd), difficulty[i]!, 1]);
    fit.p.push(a.preference === 0 ? 0.5 : a.preference - 1);
    fit.s.push(1);
  });
  return { fit, difficulty };
}

const dot = (a: number[], b: number[]) => a.reduce((t, v, j) => t + v * b[j]!, 0);

function objective(d: Design, w: number[], C: number): number {
  let loss = 0;
  d.x.forEach((x, i) => {
    const z = dot(x, w);
    loss += d.s[i]! * (Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))) - d.p[i]! * z);
  });
  return C * loss + w.reduce((t, v) => t + Math.abs(v), 0);
}

function gradient(d: Design, w: number[], C: number): number[] {
  const g = [0, 0, 0];
  d.x.forEach((x, i) => {
    const r = d.s[i]! * (logistic(dot(x, w)) - d.p[i]!);
    for (let j = 0; j < 3; j++) g[j]! += C * r * x[j]!;
  });
  return g;
}

/** Solves a small symmetric positive definite system by Gaussian elimination. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let k = 0; k < n; k++) {
    for (let i = k + 1; i < n; i++) {
      const f = m[i]![k]! / m[k]![k]!;
      for (let j = k; j <= n; j++) m[i]![j]! -= f * m[k]![j]!;
    }
  }
  const out = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let t = m[i]![n]!;
    for (let j = i + 1; j < n; j++) t -= m[i]![j]! * out[j]!;
    out[i] = t / m[i]![i]!;
  }
  return out;
}

/**
 * The L1 minimiser by sign-pattern enumeration: for each pattern in {-1, 0, +1}^3, Newton's method on the
 * smooth problem C * loss + sigma . w over the free coordinates; the answer is the pattern whose solution
 * keeps its signs and satisfies |gradient| <= 1 on the zeroed coordinates (the KKT conditions).
 */
function l1Minimiser(d: Design, C: number): number[] {
  let best: { w: number[]; f: number } | null = null;
  for (let code = 0; code < 27; code++) {
    const sigma = [code % 3, Math.floor(code / 3) % 3, Math.floor(code / 9)].map((v) => v - 1);
    const free = [0, 1, 2].filter((j) => sigma[j] !== 0);
    const w = [0, 0, 0];
    for (let it = 0; it < 100 && free.length > 0; it++) {
      const g = gradient(d, w, C);
      const h = free.map(() => free.map(() => 0));
      d.x.forEach((x, i) => {
        const q = logistic(dot(x, w));
        const c = C * d.s[i]! * q * (1 - q);
        free.forEach((a, ia) => {
          free.forEach((b, ib) => {
            h[ia]![ib]! += c * x[a]! * x[b]!;
          });
        });
      });
      const step = solve(
        h,
        free.map((j) => -(g[j]! + sigma[j]!)),
      );
      const smooth = (v: number[]) =>
        objective(d, v, C) - v.reduce((t, x) => t + Math.abs(x), 0) + dot(sigma, v);
      let t = 1;
      const before = smooth(w);
      let trial = [...w];
      for (; t > 1e-9; t /= 2) {
        trial = [...w];
        free.forEach((j, k) => {
          trial[j] = w[j]! + t * step[k]!;
        });
        if (smooth(trial) <= before) break;
      }
      const moved = Math.max(...free.map((j) => Math.abs(trial[j]! - w[j]!)));
      free.forEach((j) => {
        w[j] = trial[j]!;
      });
      // Past a weak enough penalty's reach the smooth problem of a wrong sign pattern is unbounded.
      if (moved < 1e-15 || Math.max(...w.map(Math.abs)) > 1e6) break;
    }
    const g = gradient(d, w, C);
    const consistent = [0, 1, 2].every((j) =>
      sigma[j] === 0 ? Math.abs(g[j]!) <= 1 + 1e-9 : Math.sign(w[j]!) === sigma[j] || w[j] === 0,
    );
    const f = objective(d, w, C);
    if (consistent && (best === null || f < best.f)) best = { w, f };
  }
  return best!.w;
}

function heldOutLoss(d: Design, w: number[]): number {
  let total = 0;
  d.x.forEach((x, i) => {
    const q = Math.min(1 - 1e-15, Math.max(1e-15, logistic(dot(x, w))));
    total -= d.s[i]! * (d.p[i]! * Math.log(q) + (1 - d.p[i]!) * Math.log(1 - q));
  });
  return total / d.x.length;
}

function independentLc(annotationsText: string, gamedText: string): { lc: number; se: number; C: number } {
  const { fit, difficulty } = designFromFiles(annotationsText, gamedText);
  const Cs = Array.from({ length: 10 }, (_, k) => 10 ** (-4 + (8 * k) / 9));
  const pick = (keep: (i: number) => boolean): Design => ({
    x: fit.x.filter((_, i) => keep(i)),
    p: fit.p.filter((_, i) => keep(i)),
    s: fit.s.filter((_, i) => keep(i)),
  });
  const losses = Cs.map((C) => {
    let total = 0;
    for (let f = 0; f < 5; f++)
      total += heldOutLoss(
        pick((i) => i % 5 === f),
        l1Minimiser(
          pick((i) => i % 5 !== f),
          C,
        ),
      );
    return total;
  });
  const C = Cs[losses.indexOf(Math.min(...losses))]!;
  const w = l1Minimiser(fit, C);
  const predictions = difficulty.map((h) => logistic(w[1]! * h + w[2]!));
  const m = predictions.reduce((a, b) => a + b, 0) / predictions.length;
  const sd = Math.sqrt(predictions.reduce((a, b) => a + (b - m) ** 2, 0) / (predictions.length - 1));
  return { lc: 100 * m, se: (100 * sd) / Math.sqrt(predictions.length), C };
}

// ---- The tests --------------------------------------------------------------------------------------

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function evalJson(...args: string[]): Record<string, number | null> {
  const r = spawnSync(process.execPath, [dno, "eval", ...args, "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, number | null>;
}

test("the leaderboard LC fit with gamed rows matches an independent computation of the formula", () => {
  for (const seed of [1]) {
    const files = syntheticFiles(seed);
    const annotations = write(`annotations-${seed}.json`, files.annotations);
    const gamed = write(`df_gamed-${seed}.csv`, files.gamed);
    const difficulty = write(`instruction_difficulty-${seed}.csv`, files.difficultyCsv);
    const out = evalJson("--alpaca-annotations", annotations, "--gamed-annotations", gamed);
    const reference = independentLc(files.annotations, files.gamed);
    assert.ok(
      Math.abs(out.length_controlled_winrate! - reference.lc) < 1e-6,
      `seed ${seed}: dno ${out.length_controlled_winrate} reference ${reference.lc} (C ${reference.C})`,
    );
    assert.ok(
      Math.abs(out.lc_standard_error! - reference.se) < 1e-6,
      `${out.lc_standard_error} vs ${reference.se}`,
    );
    // The difficulty CSV agrees with df_gamed.csv here, so giving it too changes nothing.
    const both = evalJson(
      "--alpaca-annotations",
      annotations,
      "--gamed-annotations",
      gamed,
      "--instruction-difficulty",
      difficulty,
    );
    assert.equal(both.length_controlled_winrate, out.length_controlled_winrate);
    // Without the gamed rows the fit is a different one: the README's drift.
    const partial = evalJson("--alpaca-annotations", annotations, "--instruction-difficulty", difficulty);
    assert.notEqual(partial.length_controlled_winrate, out.length_controlled_winrate);
  }
});

const sklearnSkip =
  spawnSync(PYTHON, ["-c", "import sklearn, numpy"], { stdio: "ignore" }).status !== 0
    ? `scikit-learn not available (${PYTHON} -c "import sklearn" failed; apt-get install -y python3-sklearn)`
    : false;
if (sklearnSkip) console.log(`# SKIP eval-alpaca-gamed sklearn reference: ${sklearnSkip}`);

test("the same fit agrees with scikit-learn's liblinear", { skip: sklearnSkip }, () => {
  const files = syntheticFiles(3);
  const annotations = write("annotations-sk.json", files.annotations);
  const gamed = write("df_gamed-sk.csv", files.gamed);
  const out = evalJson("--alpaca-annotations", annotations, "--gamed-annotations", gamed);
  const r = spawnSync(PYTHON, [sklearnReference, annotations, gamed, "1e-8"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const reference = JSON.parse(r.stdout) as { length_controlled_winrate: number; lc_standard_error: number };
  assert.ok(
    Math.abs(out.length_controlled_winrate! - reference.length_controlled_winrate) < 1e-4,
    `dno ${out.length_controlled_winrate} sklearn ${reference.length_controlled_winrate}`,
  );
  assert.ok(Math.abs(out.lc_standard_error! - reference.lc_standard_error) < 1e-4);
});

test("df_gamed.csv: the difficulty of an index is its first row's; bad rows name the line and column", () => {
  const file = write(
    "small_gamed.csv",
    "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline,model\n" +
      "1,0.25,-0.5,0.75,False,v\n0,,0.1,-1.5,False,v\n1,0.5,0.3,9,False,c\n",
  );
  const gamed = readGamedAnnotations(file);
  assert.deepEqual(gamedDifficulty(gamed, file, 2), [-1.5, 0.75]);
  assert.equal(gamed.rows.length, 3);
  assert.equal(gamed.rows[1]!.preference, null);
  assert.throws(() => gamedDifficulty(gamed, file, 3), /small_gamed\.csv: no row with index 2/);
  const cases: [string, RegExp][] = [
    ["index,preference\n0,0.5\n", /no "std_delta_len" column/],
    [
      "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,1.5,0,0,False\n",
      /bad\.csv:2: preference: expected a number in \[0, 1\] or empty, got "1\.5"/,
    ],
    [
      "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,0.5,0,0,maybe\n",
      /bad\.csv:2: not_gamed_baseline: expected True or False/,
    ],
    [
      "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,0.5\n",
      /bad\.csv:2: 2 fields/,
    ],
  ];
  for (const [text, message] of cases) {
    const bad = write("bad.csv", text);
    assert.throws(() => readGamedAnnotations(bad), message);
  }
  const r = spawnSync(
    process.execPath,
    [
      dno,
      "eval",
      "--alpaca-annotations",
      write("a.json", syntheticFiles(1).annotations),
      "--gamed-annotations",
      join(dir, "bad.csv"),
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.csv:2: 2 fields/);
});
