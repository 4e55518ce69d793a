/**
 * MCTS-DPO's sampler (config `search`, arXiv 2405.00451): instead of K whole responses per prompt,
 * pi_t searches a tree of reasoning steps per prompt (src/core/mcts.ts) and the run trains on
 * step-level pairs: at each node of the committed path, its highest- over its lowest-Q child, both
 * continuing the node's prefix. Steps end at `search.delimiter`; a step that ends the response (EOS) is
 * terminal and judged by the oracle's pointwise score (correct when >= `correct_score`: value +1, else
 * -1), plus, with `self_eval`, the policy's own weighted judgment of every step. All trees of the partition are searched in lockstep, so each round of expansions is one batch
 * of samples; the round number seeds it: Rng.derive(seed, "search", t, round).
 */
import { join } from "node:path";
import {
  type ExpandRequest,
  type StepNode,
  type StepProposal,
  StepTree,
  searchTrees,
  stepPairs,
} from "../core/mcts.js";
import { pairComposition } from "../core/pairs.js";
import { sigmoid } from "../core/prob.js";
import { deriveSeed } from "../core/rng.js";
import { DnoError } from "../util/errors.js";
import { readJsonl } from "../util/jsonl.js";
import type { RunConfig } from "./config.js";
import type { PromptRow } from "./data.js";
import type { IterationPairs, PairSource, PairSourceContext } from "./pair-source.js";
import { iterDir, policyPath } from "./paths.js";
import {
  encodePromptText,
  loadPolicy,
  type Policy,
  responseIds,
  sampleSteps,
  sequenceLogprobs,
} from "./policy.js";
import { type PairRow, pairRowSchema } from "./records.js";
import { writeJsonlAt } from "./stages.js";

export type SearchConfig = NonNullable<RunConfig["search"]>;

export interface SearchResult {
  prompts: number;
  pairs: number;
  /** Policy tokens sampled by the search. */
  tokens: number;
  /** Oracle calls made (one per expansion with terminal children). */
  judgments: number;
  /** Fraction of committed paths whose final step was judged correct. */
  solved: number;
}

/** MCTS-DPO's pairs: one stage per iteration, t/search, writing pairs.jsonl and search.jsonl. */
export function searchPairs(ctx: PairSourceContext): PairSource {
  return {
    async pairs(t, prompts): Promise<IterationPairs> {
      const dir = iterDir(t);
      const r = await ctx.stage(`${t}/search`, [`${dir}/pairs.jsonl`, `${dir}/search.jsonl`], () =>
        searchStage(ctx, t, join(ctx.runDir, policyPath(t)), prompts, dir),
      );
      const composition = pairComposition(readJsonl(join(ctx.runDir, dir, "pairs.jsonl"), pairRowSchema));
      return { composition, spent: { tokens: r.tokens, judgments: r.judgments } };
    },
  };
}

async function searchStage(
  ctx: PairSourceContext,
  t: number,
  policyDir: string,
  rows: readonly PromptRow[],
  outDir: string,
): Promise<SearchResult> {
  const s = ctx.config.search!;
  if (ctx.oracle.mode !== "pointwise") {
    throw new DnoError(
      "search: MCTS judges each finished chain on its own; the oracle must score (pointwise mode)",
    );
  }
  const policy = loadPolicy(policyDir);
  const trees = rows.map(
    () =>
      new StepTree({
        cPuct: s.c_puct,
        lengthPenalty: s.length_penalty,
        gamma: s.gamma,
        depthLimit: s.depth_limit,
      }),
  );
  let round = 0;
  let tokens = 0;
  let judgments = 0;
  const expand = async (requests: readonly ExpandRequest[]): Promise<StepProposal[][]> => {
    const prefixes = requests.map((r) => trees[r.tree]!.prefix(r.node));
    const samples = await sampleSteps(
      policy,
      requests.map((r, i) => rows[r.tree]!.prompt + prefixes[i]!),
      {
        samplesPerPrompt: s.children,
        temperature: s.temperature,
        topP: 1,
        topK: 0,
        maxNewTokens: s.max_step_tokens,
        seed: deriveSeed(ctx.config.seed, "search", t, round++),
        stopStrings: [s.delimiter],
      },
    );
    const out: StepProposal[][] = [];
    for (let i = 0; i < requests.length; i++) {
      const question = rows[requests[i]!.tree]!.prompt;
      const seen = new Set<string>();
      const children: StepProposal[] = [];
      for (const x of samples[i]!) {
        tokens += x.tokens.length;
        const text = x.finishReason === "stop" ? x.text + s.delimiter : x.text;
        // Identical siblings would split one step's visits; the authors filter near-duplicates too.
        if (seen.has(text)) continue;
        seen.add(text);
        children.push({
          text,
          logprob: x.logprob,
          tokens: x.tokens.length,
          ids: responseIds(policy, x.tokens, x.finishReason === "eos"),
          value: 0,
          terminal: x.finishReason !== "stop",
        });
      }
      if (s.self_eval) {
        const conf = selfEvaluation(policy, s.self_eval, question, prefixes[i]!, children);
        children.forEach((c, j) => {
          c.value += s.self_eval!.weight * conf[j]!;
        });
      }
      const finals = children.filter((c) => c.terminal);
      if (finals.length > 0) {
        judgments++;
        const scores = await ctx.oracle.score(
          question,
          finals.map((c) => prefixes[i]! + c.text),
        );
        // A failed judgment is no label: the step keeps value 0.
        finals.forEach((c, j) => {
          const score = scores[j];
          if (score === null || score === undefined) return;
          c.outcome = score >= s.correct_score ? 1 : -1;
          c.value += c.outcome;
        });
      }
      out.push(children);
    }
    return out;
  };
  const paths = await searchTrees(trees, expand, {
    simulations: s.simulations,
    firstStepFactor: s.first_step_factor,
    onRound: (finished, total) => ctx.progress(`${t}/search`, finished, total),
  });

  const pairs: PairRow[] = [];
  const traces: unknown[] = [];
  let solved = 0;
  paths.forEach((path, i) => {
    const tree = trees[i]!;
    const row = rows[i]!;
    const last = path[path.length - 1]!;
    if (last.value > 0) solved++;
    traces.push({
      id: row.id,
      response: tree.prefix(last),
      value: last.value,
      outcome: last.outcome ?? null,
      nodes: countNodes(tree.root),
    });
    for (const p of stepPairs(tree, path.slice(0, -1))) {
      pairs.push(
        pairRow(row, p.prefix, p.chosen, p.rejected, t, encodePromptText(policy, row.prompt + p.prefix)),
      );
    }
  });
  if (pairs.length === 0) {
    throw new DnoError(
      `iteration ${t}: the search found no step pairs (all sibling steps were valued alike); raise search.children or search.simulations`,
    );
  }
  writeJsonlAt(ctx.runDir, join(outDir, "pairs.jsonl"), pairs);
  writeJsonlAt(ctx.runDir, join(outDir, "search.jsonl"), traces);
  return { prompts: rows.length, pairs: pairs.length, tokens, judgments, solved: solved / rows.length };
}

function pairRow(
  row: PromptRow,
  prefix: string,
  chosen: StepNode,
  rejected: StepNode,
  t: number,
  promptIds: number[],
): PairRow {
  return {
    promptId: row.id,
    chosen: `n${chosen.id}`,
    rejected: `n${rejected.id}`,
    chosenSource: "student",
    rejectedSource: "student",
    rule: "mcts",
    margin: chosen.Q - rejected.Q,
    target: null,
    iteration: t,
    // The question and the shared steps are the prompt; each alternative step is a (partial) response.
    prompt: row.prompt + prefix,
    chosenText: chosen.text,
    rejectedText: rejected.text,
    chosenWinRate: null,
    rejectedWinRate: null,
    // As sampled: a step that goes on has no EOS after it, a final one has.
    promptIds,
    chosenIds: [...chosen.ids],
    rejectedIds: [...rejected.ids],
  };
}

/** P(yes) / (P(yes) + P(no)) = sigmoid(log pi(yes) - log pi(no)) after the self-evaluation prompt, per step. */
export function selfEvaluation(
  policy: Policy,
  e: NonNullable<SearchConfig["self_eval"]>,
  question: string,
  prefix: string,
  steps: readonly { text: string }[],
): number[] {
  const items = steps.flatMap((step) => {
    const prompt = e.template.replaceAll("{prompt}", question).replaceAll("{steps}", prefix + step.text);
    return [
      { prompt, response: e.yes },
      { prompt, response: e.no },
    ];
  });
  const lp = sequenceLogprobs(policy, items);
  return steps.map((_, j) => sigmoid(lp[2 * j]! - lp[2 * j + 1]!));
}

function countNodes(node: StepNode): number {
  return 1 + (node.children ?? []).reduce((sum, c) => sum + countNodes(c), 0);
}
