/**
 * Monte Carlo tree search over reasoning steps, as MCTS-DPO runs it (Xie et al. 2024, arXiv 2405.00451,
 * and the authors' code): the policy proposes each node's children (its next steps), a child's value
 * comes from the outcome check (+1 / -1 at a terminal step) plus, optionally, the policy's
 * self-evaluation; selection is PUCT; backup averages the children's Q weighted by visits.
 *
 *   r(s)  = v(s) - v(parent(s))                       the step's own reward
 *   Q(s)  = r(s) + gamma V(s)                          (V = 0 until s has children)
 *   V(s)  = sum_c max(1, N_c) Q_c / sum_c max(1, N_c)  over s's children
 *   PUCT  = Q(s) + c_puct p(s) sqrt(N(parent)) / (1 + N(s)),  p(s) = exp(log pi(step) / len^lambda)
 *
 * A search iteration selects by PUCT down to a leaf, then keeps expanding and descending by PUCT until a
 * terminal step (or the depth limit), and backs up along the path. Pure and synchronous: the caller
 * expands nodes (src/pipeline/mcts.ts batches that across prompts).
 */

export interface StepProposal {
  /** The step's text, delimiter included (a final step has none). */
  text: string;
  /** log pi(step | prefix) and its length in tokens (for the prior p). */
  logprob: number;
  tokens: number;
  /** The step's token ids as sampled (a final step's closing EOS included): what a pair trains on. */
  ids: readonly number[];
  /** v: the step's value (outcome check at a terminal step, plus weighted self-evaluation). */
  value: number;
  /** The outcome check's part of v at a judged final step (+1 right, -1 wrong); absent elsewhere. */
  outcome?: number;
  terminal: boolean;
}

export interface StepNode extends StepProposal {
  id: number;
  parent: StepNode | null;
  depth: number;
  children: StepNode[] | null;
  N: number;
  V: number;
  Q: number;
}

export interface MctsParams {
  /** Exploration weight c_puct (the authors' w_exp). */
  cPuct: number;
  /** lambda in the prior's length normalisation (the authors use 1.25). */
  lengthPenalty: number;
  gamma: number;
  /** Steps at most below the root; a node at this depth is terminal. */
  depthLimit: number;
}

export const DEFAULT_MCTS: MctsParams = { cPuct: 1, lengthPenalty: 1.25, gamma: 1, depthLimit: 4 };

export class StepTree {
  readonly root: StepNode;
  private nextId = 1;

  constructor(readonly params: MctsParams) {
    this.root = {
      id: 0,
      parent: null,
      depth: 0,
      text: "",
      logprob: 0,
      tokens: 0,
      ids: [],
      value: 0,
      terminal: false,
      children: null,
      N: 0,
      V: 0,
      Q: 0,
    };
  }

  /** r(s) = v(s) - v(parent). */
  reward(node: StepNode): number {
    return node.parent === null ? node.value : node.value - node.parent.value;
  }

  prior(node: StepNode): number {
    return Math.exp(node.logprob / Math.max(1, node.tokens) ** this.params.lengthPenalty);
  }

  puct(node: StepNode): number {
    const parentN = node.parent?.N ?? 0;
    return node.Q + (this.params.cPuct * this.prior(node) * Math.sqrt(parentN)) / (1 + node.N);
  }

  /** Terminal by its own last step or by the depth limit: never expanded. */
  isLeafForever(node: StepNode): boolean {
    return node.terminal || node.depth >= this.params.depthLimit;
  }

  /** The child with the highest PUCT (the first on ties). */
  puctChild(node: StepNode): StepNode {
    const children = node.children!;
    let best = children[0]!;
    let bestScore = this.puct(best);
    for (const c of children.slice(1)) {
      const s = this.puct(c);
      if (s > bestScore) {
        best = c;
        bestScore = s;
      }
    }
    return best;
  }

  /** From `from`, down by PUCT to a node that is unexpanded or terminal. */
  select(from: StepNode): StepNode[] {
    const path = [from];
    let node = from;
    while (node.children !== null && node.children.length > 0 && !this.isLeafForever(node)) {
      node = this.puctChild(node);
      path.push(node);
    }
    return path;
  }

  /** Adds the proposals as `node`'s children; Q starts at V(parent) + r, as in the authors' code. */
  expand(node: StepNode, proposals: readonly StepProposal[]): StepNode[] {
    if (node.children !== null) throw new Error(`node ${node.id} is already expanded`);
    node.children = proposals.map((p) => {
      const child: StepNode = {
        ...p,
        terminal: p.terminal || node.depth + 1 >= this.params.depthLimit,
        id: this.nextId++,
        parent: node,
        depth: node.depth + 1,
        children: null,
        N: 0,
        V: 0,
        Q: 0,
      };
      child.Q = node.V + this.reward(child);
      return child;
    });
    return node.children;
  }

  /** Visits along the path; the leaf's Q = r + gamma V, then each ancestor's V and Q from its children. */
  backup(path: readonly StepNode[]): void {
    const leaf = path[path.length - 1]!;
    leaf.Q = this.reward(leaf) + this.params.gamma * leaf.V;
    leaf.N++;
    for (let i = path.length - 2; i >= 0; i--) {
      const node = path[i]!;
      let num = 0;
      let den = 0;
      for (const c of node.children ?? []) {
        const w = Math.max(1, c.N);
        num += w * c.Q;
        den += w;
      }
      node.V = den > 0 ? num / den : 0;
      node.N++;
      if (node.parent !== null) node.Q = this.reward(node) + this.params.gamma * node.V;
    }
  }

  /** The move the search commits to: most visits, then highest Q, then highest V (the authors' order). */
  mostVisited(node: StepNode): StepNode {
    let best = node.children![0]!;
    for (const c of node.children!.slice(1)) {
      if (c.N > best.N || (c.N === best.N && (c.Q > best.Q || (c.Q === best.Q && c.V > best.V)))) best = c;
    }
    return best;
  }

  /** The text from the root to `node`: the steps so far. */
  prefix(node: StepNode): string {
    const parts: string[] = [];
    for (let n: StepNode | null = node; n !== null; n = n.parent) parts.push(n.text);
    return parts.reverse().join("");
  }
}

export interface StepPair {
  /** The steps before the two alternatives. */
  prefix: string;
  chosen: StepNode;
  rejected: StepNode;
}

/**
 * Step-level preferences along the committed path: at each node with two or more children, the
 * highest-Q child over the lowest-Q child (they share the node's prefix). Equal Q gives no pair.
 */
export function stepPairs(tree: StepTree, path: readonly StepNode[]): StepPair[] {
  const out: StepPair[] = [];
  for (const node of path) {
    const children = node.children;
    if (children === null || children.length < 2) continue;
    let best = children[0]!;
    let worst = children[0]!;
    for (const c of children.slice(1)) {
      if (c.Q > best.Q) best = c;
      if (c.Q < worst.Q) worst = c;
    }
    if (best.Q > worst.Q) out.push({ prefix: tree.prefix(node), chosen: best, rejected: worst });
  }
  return out;
}

export interface SearchOptions {
  /** Search iterations before each committed step (the first step gets `firstStepFactor` times more). */
  simulations: number;
  firstStepFactor: number;
  /** Called before each round of expansions: trees finished, of all. */
  onRound?: (finished: number, total: number) => void;
}

export interface ExpandRequest {
  tree: number;
  node: StepNode;
}

/** Proposes the children of each requested node (one batch of policy samples across trees). */
export type ExpandFn = (requests: readonly ExpandRequest[]) => Promise<StepProposal[][]>;

interface TreeState {
  moveRoot: StepNode;
  budget: number;
  path: StepNode[] | null;
  committed: StepNode[];
  done: boolean;
}

/**
 * Searches every tree in lockstep until each has committed to a terminal step: per step, `simulations`
 * iterations from the current node, then a move to its most visited child (the authors' loop, at
 * temperature 0). Each round asks `expand` for every tree's pending expansion at once, so the policy
 * samples all of them in one batch. Returns each tree's committed path, root first.
 */
export async function searchTrees(
  trees: readonly StepTree[],
  expand: ExpandFn,
  options: SearchOptions,
): Promise<StepNode[][]> {
  if (!(Number.isInteger(options.simulations) && options.simulations >= 1)) {
    throw new RangeError(`mcts: simulations must be a positive integer, got ${options.simulations}`);
  }
  const states: TreeState[] = trees.map((t) => ({
    moveRoot: t.root,
    budget: options.simulations * options.firstStepFactor,
    path: null,
    committed: [t.root],
    done: false,
  }));
  for (;;) {
    const requests: ExpandRequest[] = [];
    states.forEach((s, i) => {
      const node = advance(trees[i]!, s, options);
      if (node !== null) requests.push({ tree: i, node });
    });
    if (requests.length === 0) break;
    options.onRound?.(states.filter((s) => s.done).length, states.length);
    const proposals = await expand(requests);
    requests.forEach((r, j) => {
      const tree = trees[r.tree]!;
      const state = states[r.tree]!;
      const children = tree.expand(r.node, proposals[j]!);
      if (children.length > 0) state.path!.push(tree.puctChild(r.node));
    });
  }
  return states.map((s) => s.committed);
}

/** Runs a tree's search until it needs an expansion (returned) or has finished (null). */
function advance(tree: StepTree, s: TreeState, options: SearchOptions): StepNode | null {
  while (!s.done) {
    if (s.path === null) {
      if (s.budget === 0) {
        if (!s.moveRoot.children?.length) {
          s.done = true;
          break;
        }
        const next = tree.mostVisited(s.moveRoot);
        s.committed.push(next);
        s.moveRoot = next;
        if (tree.isLeafForever(next)) {
          s.done = true;
          break;
        }
        s.budget = options.simulations;
      }
      s.path = tree.select(s.moveRoot);
    }
    const leaf = s.path[s.path.length - 1]!;
    if (leaf.children === null && !tree.isLeafForever(leaf)) return leaf;
    if (leaf.children !== null && leaf.children.length > 0 && !tree.isLeafForever(leaf)) {
      s.path.push(tree.puctChild(leaf));
      continue;
    }
    tree.backup(s.path);
    s.path = null;
    s.budget--;
  }
  return null;
}
