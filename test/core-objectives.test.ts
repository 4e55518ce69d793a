import assert from "node:assert/strict";
import { test } from "node:test";
import {
  getObjective,
  nashMdReference,
  OBJECTIVE_NAMES,
  OBJECTIVES,
  type PairBatch,
  sequenceLossFn,
  softTargets,
} from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import { DnoError } from "../src/util/errors.js";

const f64 = (...xs: number[]) => Float64Array.from(xs);

function randomBatch(rng: Rng, n: number): PairBatch {
  const draw = (scale: number, shift = 0) =>
    Float64Array.from({ length: n }, () => shift + scale * rng.normal());
  return {
    policyChosen: draw(3, -20),
    policyRejected: draw(3, -20),
    refChosen: draw(3, -20),
    refRejected: draw(3, -20),
    target: Float64Array.from({ length: n }, () => rng.float()),
    winRateChosen: Float64Array.from({ length: n }, () => rng.float()),
    winRateRejected: Float64Array.from({ length: n }, () => rng.float()),
    anchorChosen: draw(3, -20),
    anchorRejected: draw(3, -20),
    policyExplore: draw(3, -20),
    refExplore: draw(3, -20),
  };
}

test("every objective's gradient matches float64 central differences", () => {
  const rng = Rng.derive(1, "objective-fd");
  for (const name of OBJECTIVE_NAMES) {
    for (const beta of [0.05, 0.1, 1]) {
      const batch = randomBatch(rng, 5);
      // Keep |h| moderate so the sigmoid losses are not saturated (their gradients would be ~0).
      for (let i = 0; i < 5; i++)
        batch.policyChosen[i] =
          batch.refChosen[i]! - batch.refRejected[i]! + batch.policyRejected[i]! + rng.normal() / beta;
      const params = { beta, tau: beta / 3, alpha: 0.7 };
      const fn = OBJECTIVES[name].fn;
      const grads = fn(batch, params);
      const fields = ["policyChosen", "policyRejected", "policyExplore"] as const;
      for (const field of fields) {
        const grad = {
          policyChosen: grads.gradChosen,
          policyRejected: grads.gradRejected,
          policyExplore: grads.gradExplore ?? new Float64Array(5),
        }[field];
        for (let i = 0; i < 5; i++) {
          const values = batch[field]!;
          const x = values[i]!;
          const eps = 1e-5 * Math.max(1, Math.abs(x));
          values[i] = x + eps;
          const up = fn(batch, params).loss;
          values[i] = x - eps;
          const down = fn(batch, params).loss;
          values[i] = x;
          const fd = (up - down) / (2 * eps);
          const err = Math.abs(fd - grad[i]!) / Math.max(1e-3, Math.abs(fd));
          assert.ok(err < 1e-6, `${name} beta=${beta} d/d${field}[${i}]: analytic ${grad[i]} vs fd ${fd}`);
        }
      }
    }
  }
});

// One pair: lr(y_w) = -1 - (-2) = 1, lr(y_l) = -3 - (-2.5) = -0.5, beta = 0.5, so h = 0.75.
const one = (): PairBatch => ({
  policyChosen: f64(-1),
  policyRejected: f64(-3),
  refChosen: f64(-2),
  refRejected: f64(-2.5),
  target: f64(0.7),
  winRateChosen: f64(0.8),
  winRateRejected: f64(0.3),
  anchorChosen: f64(-1),
  anchorRejected: f64(-4),
});

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);
}

test("losses equal hand-computed values", () => {
  const p = { beta: 0.5, tau: 0.25 };
  // dno: -[0.7 log s(h) + 0.3 log s(-h)] = log(1 + e^-h) + 0.3 h; dL/dh = s(h) - 0.7.
  const dno = OBJECTIVES.dno.fn(one(), p);
  close(dno.loss, Math.log1p(Math.exp(-0.75)) + 0.3 * 0.75, "dno loss");
  close(dno.loss, 0.6118710061149, "dno loss, decimal");
  close(dno.gradChosen[0]!, 0.5 * (1 / (1 + Math.exp(-0.75)) - 0.7), "dno grad");
  close(dno.gradRejected[0]!, -0.5 * (1 / (1 + Math.exp(-0.75)) - 0.7), "dno grad rejected");
  // sigmoid (dpo / dno-prct / spin): log(1 + e^-0.75) = 0.38687100611489994 (Python math.log1p).
  for (const name of ["dpo", "dno-prct", "spin"] as const) {
    close(OBJECTIVES[name].fn(one(), p).loss, 0.38687100611489994, `${name} loss`);
  }
  // ipo: (1 - (-0.5) - 1/(2*0.5))^2 = 0.5^2; gradient 2*0.5 = 1.
  const ipo = OBJECTIVES.ipo.fn(one(), p);
  close(ipo.loss, 0.25, "ipo loss");
  close(ipo.gradChosen[0]!, 1, "ipo grad");
  close(ipo.gradRejected[0]!, -1, "ipo grad rejected");
  // sppo: (1 - 0.3/0.5)^2 + (-0.5 - (-0.2)/0.5)^2 = 0.4^2 + 0.1^2.
  const sppo = OBJECTIVES.sppo.fn(one(), p);
  close(sppo.loss, 0.17, "sppo loss");
  close(sppo.gradChosen[0]!, 0.8, "sppo grad");
  close(sppo.gradRejected[0]!, -0.2, "sppo grad rejected");
  // inpo, tau/beta = 1/2: refs become (-2-1)/2 = -1.5 and (-2.5-4)/2 = -3.25,
  // so lr_w = 0.5, lr_l = 0.25 and the loss is (0.25 - 1)^2.
  close(OBJECTIVES.inpo.fn(one(), p).loss, 0.5625, "inpo loss");
  // nash-md, same mixture refs: h = 0.5 * (0.5 - 0.25), loss log(1 + e^-0.125).
  close(OBJECTIVES["nash-md"].fn(one(), p).loss, Math.log1p(Math.exp(-0.125)), "nash-md loss");
  // selm: the dpo loss plus alpha beta (log pi(y_e) - log pi_ref(y_e)) = 0.2 * 0.5 * (-2 - -5).
  const selm = OBJECTIVES.selm.fn(
    { ...one(), policyExplore: f64(-2), refExplore: f64(-5) },
    { ...p, alpha: 0.2 },
  );
  close(selm.loss, 0.38687100611489994 + 0.3, "selm loss");
  close(selm.gradExplore![0]!, 0.1, "selm grad explore");
  close(selm.gradChosen[0]!, 0.5 * (1 / (1 + Math.exp(-0.75)) - 1), "selm grad chosen (dpo's)");
  // alpha = 0 is DPO exactly.
  const dpo = OBJECTIVES.dpo.fn(one(), p);
  const selm0 = OBJECTIVES.selm.fn(
    { ...one(), policyExplore: f64(-2), refExplore: f64(-5) },
    { ...p, alpha: 0 },
  );
  assert.equal(selm0.loss, dpo.loss);
  assert.throws(() => OBJECTIVES.selm.fn(one(), p), DnoError);
});

test("the loss is the mean over pairs, and the gradient carries the 1/n", () => {
  const a = one();
  const two: PairBatch = Object.fromEntries(
    Object.entries(a).map(([k, v]) => [
      k,
      Float64Array.from([...(v as Float64Array), ...(v as Float64Array)]),
    ]),
  ) as unknown as PairBatch;
  two.target![1] = 1; // second pair: hard label, loss log(1 + e^-0.75)
  const r = OBJECTIVES.dno.fn(two, { beta: 0.5 });
  close(r.loss, (0.6118710061149 + 0.38687100611489994) / 2, "mean loss");
  close(r.gradChosen[1]!, (0.5 * (1 / (1 + Math.exp(-0.75)) - 1)) / 2, "grad of pair 2");
});

test("sigmoid losses stay finite and exact far in the tails", () => {
  const b: PairBatch = {
    policyChosen: f64(-1000),
    policyRejected: f64(0),
    refChosen: f64(0),
    refRejected: f64(0),
  };
  const r = OBJECTIVES.dpo.fn(b, { beta: 1 });
  close(r.loss, 1000, "loss at h = -1000");
  close(r.gradChosen[0]!, -1, "gradient at h = -1000");
});

test("Nash-MD reference is the geometric mixture; tau outside [0, beta] is refused", () => {
  const mix = nashMdReference(f64(-2, -1), f64(-4, -3), { beta: 0.4, tau: 0.1 });
  close(mix[0]!, 0.75 * -2 + 0.25 * -4, "mixture");
  close(mix[1]!, 0.75 * -1 + 0.25 * -3, "mixture");
  assert.throws(() => nashMdReference(f64(0), f64(0), { beta: 0.4, tau: 0.5 }), DnoError);
});

test("objectives are picked by config string; sequenceLossFn lays out chosen then rejected", () => {
  assert.equal(getObjective("dno-prct").reference, "pi_t");
  assert.equal(getObjective("dpo").reference, "fixed");
  assert.throws(
    () => getObjective("kto"),
    (e: unknown) => e instanceof DnoError && /dno-prct/.test(e.message),
  );
  assert.throws(() => getObjective("dno").fn(one(), { beta: 0 }), DnoError);
  assert.throws(
    () => getObjective("dno").fn({ ...one(), target: undefined }, { beta: 1 }),
    /target is required/,
  );
  const b = one();
  const fn = sequenceLossFn("ipo", { refChosen: b.refChosen, refRejected: b.refRejected }, { beta: 0.5 });
  const { loss, grad } = fn(f64(-1, -3));
  close(loss, 0.25, "flat loss");
  assert.deepEqual([...grad], [1, -1]);
  assert.throws(() => fn(f64(-1)), RangeError);
  // An objective that needs "explore" reads a third block and returns its gradient there.
  const selm = sequenceLossFn(
    "selm",
    { refChosen: b.refChosen, refRejected: b.refRejected, refExplore: f64(-5) },
    { beta: 0.5, alpha: 0.2 },
  );
  const three = selm(f64(-1, -3, -2));
  close(three.loss, 0.38687100611489994 + 0.3, "flat selm loss");
  close(three.grad[2]!, 0.1, "flat selm explore grad");
  assert.throws(() => selm(f64(-1, -3)), RangeError);
  const t = softTargets([0.9, 0.5], [0.1, 0.5]);
  close(t[0]!, 1 / (1 + Math.exp(-0.8)), "soft target");
  close(t[1]!, 0.5, "soft target of a tie");
});
