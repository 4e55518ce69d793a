import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type ExpandRequest,
  type StepNode,
  type StepProposal,
  StepTree,
  searchTrees,
  stepPairs,
} from "../src/core/mcts.js";

const params = { cPuct: 1, lengthPenalty: 1, gamma: 1, depthLimit: 3 };
const step = (text: string, p: number, value: number, terminal = false, tokens = 1): StepProposal => ({
  text,
  logprob: Math.log(p),
  tokens,
  ids: [],
  value,
  terminal,
});
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test("selection, expansion and backup on a tiny tree with known values", () => {
  const tree = new StepTree(params);
  const root = tree.root;
  const [a, b] = tree.expand(root, [step("a;", 0.6, 0), step("b;", 0.4, 0.5)]) as [StepNode, StepNode];
  // Q starts at V(parent) + r, r = v - v(parent)
  close(a.Q, 0);
  close(b.Q, 0.5);
  close(tree.prior(a), 0.6);
  // an unvisited root gives no exploration bonus: PUCT is Q alone, and b leads.
  assert.equal(tree.select(root).at(-1), b);

  tree.backup([root, a]); // a unexpanded: Q = r + V = 0
  assert.deepEqual([a.N, root.N], [1, 1]);
  close(root.V, (1 * 0 + 1 * 0.5) / 2); // unvisited b weighs max(1, 0) = 1
  // PUCT: a = 0 + 0.6 * sqrt(1) / 2 = 0.3; b = 0.5 + 0.4 * 1 / 1 = 0.9
  close(tree.puct(a), 0.3);
  close(tree.puct(b), 0.9);
  assert.deepEqual(
    tree.select(root).map((n) => n.id),
    [root.id, b.id],
  );

  const [b1, b2] = tree.expand(b, [step("x", 0.5, 1, true), step("y", 0.5, -1, true)]) as [
    StepNode,
    StepNode,
  ];
  close(b1.Q, 0 + (1 - 0.5));
  close(b2.Q, 0 + (-1 - 0.5));
  tree.backup([root, b, b1]);
  close(b1.Q, 0.5);
  close(b.V, (0.5 - 1.5) / 2);
  close(b.Q, 0.5 + b.V);
  close(root.V, (a.Q + b.Q) / 2);
  assert.deepEqual([root.N, b.N, b1.N, b2.N], [2, 1, 1, 0]);
  // now a: 0 + 0.6 sqrt(2) / 2 beats b: 0 + 0.4 sqrt(2) / 2
  assert.equal(tree.puctChild(root), a);
  assert.equal(tree.prefix(b1), "b;x");
  assert.throws(() => tree.expand(b, []), /already expanded/);
});

test("priors are length-normalised; the depth limit makes a node terminal", () => {
  const tree = new StepTree({ ...params, lengthPenalty: 1.25, depthLimit: 2 });
  const [a] = tree.expand(tree.root, [step("abc;", 0.25, 0, false, 3)]) as [StepNode];
  close(tree.prior(a), Math.exp(Math.log(0.25) / 3 ** 1.25));
  assert.equal(a.terminal, false);
  const [a1] = tree.expand(a, [step("d;", 0.5, 0)]) as [StepNode];
  assert.equal(a1.terminal, true, "depth 2 of 2");
  assert.ok(tree.isLeafForever(a1));
});

test("step pairs: the highest- and lowest-Q children of each node on the path share its prefix", () => {
  const tree = new StepTree(params);
  const [a, b, c] = tree.expand(tree.root, [
    step("a;", 0.3, 0.2),
    step("b;", 0.3, -0.4),
    step("c;", 0.4, 0.7),
  ]) as [StepNode, StepNode, StepNode];
  const [c1, c2] = tree.expand(c, [step("x", 0.5, 0.7, true), step("y", 0.5, 0.7, true)]) as [
    StepNode,
    StepNode,
  ];
  const pairs = stepPairs(tree, [tree.root, c, c1]);
  // root: c (0.7) over b (-0.4); c's children tie (Q 0 and 0): no pair; c1 has no children.
  assert.equal(pairs.length, 1);
  assert.deepEqual([pairs[0]!.prefix, pairs[0]!.chosen, pairs[0]!.rejected], ["", c, b]);
  c2.Q = -1;
  const more = stepPairs(tree, [tree.root, c]);
  assert.deepEqual(
    more.map((p) => [p.prefix, p.chosen.text, p.rejected.text]),
    [
      ["", "c;", "b;"],
      ["c;", "x", "y"],
    ],
  );
  assert.ok(a.Q > b.Q);
});

/** A world with known values: two steps of "a;"/"b;", then a final "x"/"y"; only "a;b;x" is right. */
const world = async (trees: StepTree[], requests: readonly ExpandRequest[]) =>
  requests.map((r) => {
    const prefix = trees[r.tree]!.prefix(r.node);
    if (r.node.depth < 2) return [step("a;", 0.5, 0), step("b;", 0.5, 0)];
    return ["x", "y"].map((s) => step(s, 0.5, prefix + s === "a;b;x" ? 1 : -1, true));
  });

test("search commits to the only correct chain, the same searched alone or in a batch", async () => {
  const make = () => new StepTree({ ...params, depthLimit: 5 });
  const options = { simulations: 4, firstStepFactor: 4 };
  const trees = [make(), make()];
  const paths = await searchTrees(trees, (r) => world(trees, r), options);
  const alone = [make()];
  const [single] = await searchTrees(alone, (r) => world(alone, r), options);
  for (const [i, path] of paths.entries()) {
    const tree = trees[i]!;
    assert.equal(tree.prefix(path.at(-1)!), "a;b;x");
    assert.ok(path.at(-1)!.terminal);
    // 16 iterations from the root before the first step; later ones start at the committed node.
    assert.equal(tree.root.N, 16);
    for (const p of stepPairs(tree, path.slice(0, -1))) assert.ok(p.chosen.Q > p.rejected.Q);
  }
  assert.deepEqual(
    single!.map((n) => [n.id, n.N, n.Q]),
    paths[0]!.map((n) => [n.id, n.N, n.Q]),
  );
  const pairs = stepPairs(trees[0]!, paths[0]!.slice(0, -1));
  assert.deepEqual(
    pairs.map((p) => [p.prefix, p.chosen.text, p.rejected.text]),
    [
      ["", "a;", "b;"],
      ["a;", "b;", "a;"],
      ["a;b;", "x", "y"],
    ],
  );
});
