/**
 * The run report: what it says (result label, collapse banner, example answers, one colour per
 * iteration), and how it renders in headless Chromium at 1400 and 800 px: no console errors, nothing
 * wider than the window (wide tables scroll inside their box). DNO_SCREENSHOTS=dir keeps the screenshots.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { iterationColour, type ReportData, renderReport } from "../src/report/html.js";
import { CHROMIUM, checkPage } from "./chromium.js";

/** A run like the issue's: 5,000 SFT steps, 3 iterations, many task metrics, a collapse at iteration 3. */
export function fixtureReport(overrides: Partial<ReportData> = {}): ReportData {
  const metrics = (a: number) => ({
    accuracy: a,
    p_correct: a - 0.05,
    style_plain: 0.5 - a / 3,
    style_square: 0.2,
    style_round: 0.15,
    style_curly: 0.15,
    exploitability: 0.3 - a / 4,
  });
  const iterations = [0, 1, 2, 3].map((t) => ({
    t,
    winrate_vs_prev: t === 0 ? null : [0, 0.56, 0.61, 0.2][t]!,
    winrate_vs_initial: t === 0 ? null : [0, 0.56, 0.7, 0.25][t]!,
    winrate_vs_teacher: [0.52, 0.57, 0.72, 0.3][t]!,
    lc_winrate_vs_teacher: [0.5, 0.55, 0.6, 0.28][t]!,
    avg_length: [5.2, 5.9, 6.1, 14.8][t]!,
    metrics: metrics([0.71, 0.65, 0.86, 0.1][t]!),
    ...(t > 0 && {
      pairs: {
        teacher_over_student: 141 * t,
        student_over_teacher: 443,
        student_over_student: 2389,
        total: 141 * t + 2832,
      },
    }),
    seconds: 4,
  }));
  const training = [
    ...Array.from({ length: 5000 }, (_, i) => ({
      t: 0,
      step: i + 1,
      loss: 3 * Math.exp(-i / 800) + 0.2,
      margin: null,
    })),
    ...[1, 2, 3].flatMap((t) =>
      Array.from({ length: 200 }, (_, i) => ({ t, step: i + 1, loss: 0.69 - i / 1000, margin: i / 400 })),
    ),
  ];
  const answer = (k: number) => ["kdhb", "[kdhb]", "(kdhb)", "a very long answer that wraps ".repeat(6)][k]!;
  return {
    title: "dno run: dno-prct, 3 iterations",
    settings: {
      "run directory": "/tmp/a/very/long/path/to/the/run/directory/that/should/not/overflow/run",
      beta: 0.3,
    },
    iterations,
    training,
    best: 3,
    chosenBy: "validation",
    stoppedAfter: null,
    finished: true,
    warnings: [{ t: 3, guard: "metric_drop", message: "accuracy fell from 0.860 to 0.100 (more than 30%)" }],
    samples: [0, 1, 2, 3].map((t) => ({
      t,
      prompts: ["rev bhdk=", "rev ab=", "rev cdefgh="].map((prompt) => ({
        prompt,
        gold: "kdhb",
        answers: [0, 1, 2, 3].map((k) => ({
          text: answer(k),
          vsPrev: t === 0 ? null : 0.5,
          vsInitial: t === 0 ? null : 1,
          vsTeacher: 0,
        })),
      })),
    })),
    finalWeightsSha256: "5eb920d760979158d4c41104fe8c4708e4222c7300fd83a9826233a0db5d3880",
    oracleJudgments: 31890,
    mixture: null,
    ...overrides,
  };
}

test("the report: result label, banner, example answers, SFT apart, one colour per iteration", async () => {
  const html = await renderReport(fixtureReport());
  assert.match(
    html,
    /Result: <strong>pi_3<\/strong> \(row t = 2\), the best iterate, chosen by its win rate/,
  );
  assert.match(html, /2 \(best\)/);
  assert.match(html, /Collapse warning/);
  assert.match(html, /iteration 3 \(metric_drop\): accuracy fell from 0\.860 to 0\.100/);
  assert.match(html, /Example answers/);
  assert.equal((html.match(/<details/g) ?? []).length, 4, "a sample table per evaluated policy");
  assert.match(html, /SFT loss \(5000 steps, before iteration 1\)/);
  assert.match(html, /DNO training loss, by iteration/);
  // Iteration 2's colour appears in the length bars and in the DNO loss lines alike.
  const figures = html.split("<figure");
  const colourIn = (caption: string, colour: string) =>
    figures
      .find((f) => f.includes(caption))!
      .toLowerCase()
      .includes(colour.toLowerCase());
  for (const caption of ["Mean response length", "DNO training loss", "Reward margin", "Task metrics"]) {
    assert.ok(colourIn(caption, iterationColour(2)), `${caption} draws iteration 2 in ${iterationColour(2)}`);
  }
  const last = await renderReport(fixtureReport({ chosenBy: "last", warnings: [], best: 4 }));
  assert.match(last, /3 \(last\)/);
  assert.doesNotMatch(last, /\(best\)/);
  assert.doesNotMatch(last, /Collapse warning/);
  assert.match(last, /the last iterate \(the run has no validation prompts/);
});

const skip = CHROMIUM ? false : "chromium is not installed (apt-get install -y chromium; .ci/run does)";
test("the report renders in headless Chromium at 1400 and 800 px without errors or overflow", {
  skip,
}, async () => {
  const dir = process.env.DNO_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "dno-report-"));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "report.html");
  writeFileSync(file, await renderReport(fixtureReport()));
  for (const width of [1400, 800]) {
    const screenshot = join(dir, `report-${width}.png`);
    const page = await checkPage(pathToFileURL(file).href, {
      width,
      screenshot,
      expressions: [
        "document.documentElement.scrollWidth",
        "Math.max(...[...document.querySelectorAll('svg, table, .banner')].map((e) => e.closest('.scroll') ? 0 : e.getBoundingClientRect().right))",
        "document.querySelectorAll('figure svg').length",
      ],
    });
    assert.deepEqual(page.errors, [], `${width} px: console errors`);
    const [scrollWidth, right, svgs] = page.values as number[];
    assert.ok(scrollWidth! <= width, `${width} px: the page is ${scrollWidth} px wide`);
    assert.ok(right! <= width, `${width} px: an element ends at ${right} px`);
    assert.ok(svgs! >= 6, `${width} px: ${svgs} plots`);
    const png = readFileSync(screenshot);
    assert.equal(png.readUInt32BE(16), width, "the screenshot is as wide as the window");
    assert.ok(png.readUInt32BE(20) > 1000, "a full-page screenshot");
  }
});
