import assert from "node:assert/strict";
import { test } from "node:test";
import {
  defectiveShare,
  type GuardInput,
  guardsConfigSchema,
  guardWarnings,
} from "../src/pipeline/guards.js";
import type { EvalResult } from "../src/pipeline/records.js";

const config = guardsConfigSchema.parse({});
const ctx = { config, teacherPairsByDesign: false };

function input(t: number, e: Partial<EvalResult>, extra: Partial<GuardInput> = {}): GuardInput {
  return {
    evaluation: {
      t,
      winrate_vs_prev: 0.55,
      winrate_vs_initial: 0.55,
      winrate_vs_teacher: 0.5,
      lc_winrate_vs_teacher: null,
      standard_errors: { vs_prev: null, vs_initial: null, vs_teacher: null },
      validation_winrate_vs_initial: null,
      avg_length: 10,
      metrics: { accuracy: 0.9 },
      ...e,
    },
    defectiveShare: 0,
    pairs: {
      total: 10,
      teacher_over_student: 3,
      student_over_teacher: 4,
      student_over_student: 3,
      teacher_over_teacher: 0,
    },
    ...extra,
  };
}

test("a healthy iteration trips no guard", () => {
  assert.deepEqual(guardWarnings([input(0, { winrate_vs_initial: null }), input(1, {})], ctx), []);
});

test("the issue's collapse trips the guards: win rate, accuracy, teacher-only pairs, defective samples", () => {
  const collapsed = input(
    1,
    { winrate_vs_initial: 0.02, metrics: { accuracy: 0 }, avg_length: 31 },
    {
      defectiveShare: 0.6,
      pairs: {
        total: 8,
        teacher_over_student: 8,
        student_over_teacher: 0,
        student_over_student: 0,
        teacher_over_teacher: 0,
      },
    },
  );
  const w = guardWarnings([input(0, { metrics: { accuracy: 0.963 } }), collapsed], ctx);
  assert.deepEqual(
    w.map((x) => x.guard),
    ["winrate_vs_initial", "metric_drop", "length", "teacher_only_pairs", "defective"],
  );
  assert.match(w[1]!.message, /accuracy fell from 0\.963 to 0\.000/);
  assert.ok(w.every((x) => x.t === 1));
});

test("teacher-only pairs are not a warning where they are the design; small dips are not collapses", () => {
  const allTeacher = input(
    1,
    { metrics: { accuracy: 0.8 } },
    {
      pairs: {
        total: 8,
        teacher_over_student: 8,
        student_over_teacher: 0,
        student_over_student: 0,
        teacher_over_teacher: 0,
      },
    },
  );
  assert.deepEqual(guardWarnings([input(0, {}), allTeacher], { ...ctx, teacherPairsByDesign: true }), []);
  assert.deepEqual(
    guardWarnings([input(0, {}), allTeacher], ctx).map((x) => x.guard),
    ["teacher_only_pairs"],
  );
});

test("defective samples: loops and invalid UTF-8", () => {
  const d = { n: 3, maxRepeatFraction: 0.4 };
  assert.equal(defectiveShare(["BF\ufffdE\ufffdH!", "fine", "a b c a b c a b c a b c", "ok"], d), 0.5);
  assert.equal(defectiveShare([], d), 0);
});
