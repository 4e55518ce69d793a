/**
 * Continuous batching on the native KV-cache sampler: requests arrive at any time, each prompt's K
 * samples join the running decode batch at the next step (native `admit`), and leave it when they
 * finish; one step decodes every running sample of every request as one batch of rows. A request's
 * samples are exactly those `generate` draws for the same prompts and seed (sample k of prompt p seeded
 * by deriveSeed(seed, "generate", p, k)): who else is in the batch never changes a result.
 */
import { deriveSeed } from "../core/rng.js";
import {
  createSampler,
  FINISH_EOS,
  FINISH_LENGTH,
  FINISH_RUNNING,
  type NativeSampler,
} from "../engine/sampler.js";
import { DnoError } from "../util/errors.js";
import { type FinishReason, findStop, type SamplingModel } from "./generate.js";
import type { Tokenizer } from "./tokenizer.js";

export interface BatchRequest {
  /** Prompt ids, one entry per prompt; each prompt gets `n` samples. */
  prompts: number[][];
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  eosTokenIds: number[];
  seed: number;
  stopStrings: string[];
}

/** One sample as it stands: its tokens so far, their model log-probs, and why it ended (once it has). */
export interface LiveSample {
  /** The prompt's ids: a response's text is decoded as their continuation (decodeResponse). */
  prompt: readonly number[];
  tokens: number[];
  /** log pi(token | prefix) at temperature 1, per token. */
  tokenLogprobs: number[];
  /** Text cut before a stop string, once one was found. */
  stoppedText?: string;
  finishReason: FinishReason | null;
}

interface Group {
  id: number;
  prompt: number[];
  K: number;
  maxNew: number;
  stopStrings: string[];
  tokens: Int32Array;
  logp: Float32Array;
  len: Int32Array;
  finish: Int32Array;
  stopped: Map<number, { tokens: number; text: string }>;
}

interface Job {
  groups: Group[];
  onStep?: ((samples: LiveSample[]) => void) | undefined;
  resolve: (samples: LiveSample[]) => void;
}

export class ContinuousBatcher {
  private readonly sampler: NativeSampler;
  private readonly jobs = new Set<Job>();
  private nextId = 0;
  private looping = false;

  constructor(
    private readonly model: SamplingModel,
    private readonly tokenizer: Tokenizer,
  ) {
    const adapter = model.adapter;
    this.sampler = createSampler(
      model.config,
      model.params,
      adapter ? { spec: adapter.spec, params: adapter.params } : null,
    );
  }

  /** Samples running now (across requests). */
  get runningSamples(): number {
    let n = 0;
    for (const job of this.jobs)
      for (const g of job.groups) for (let k = 0; k < g.K; k++) n += g.finish[k] === FINISH_RUNNING ? 1 : 0;
    return n;
  }

  /**
   * Adds a request's samples to the batch; resolves with them, prompt-major (prompt p's sample k at
   * p * n + k), when all have finished. `onStep` sees them after every decode step (streaming);
   * `signal` aborts the request (its running samples stop).
   */
  submit(
    request: BatchRequest,
    onStep?: (samples: LiveSample[]) => void,
    signal?: AbortSignal,
  ): Promise<LiveSample[]> {
    const V = this.model.config.vocabSize;
    request.prompts.forEach((prompt, p) => {
      if (prompt.length === 0) throw new DnoError(`prompt ${p} is empty`);
      const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
      if (bad !== undefined)
        throw new DnoError(`prompt ${p}: token ${bad} is outside the vocabulary (0..${V - 1})`);
    });
    const options = {
      temperature: request.temperature,
      topK: request.topK,
      topP: request.topP,
      maxNewTokens: request.maxNewTokens,
      eosTokenIds: Int32Array.from(request.eosTokenIds),
    };
    const K = request.n;
    const groups = request.prompts.map((prompt, p): Group => {
      const group: Group = {
        id: this.nextId++,
        prompt,
        K,
        maxNew: request.maxNewTokens,
        stopStrings: request.stopStrings.filter((s) => s !== ""),
        tokens: new Int32Array(K * request.maxNewTokens),
        logp: new Float32Array(K * request.maxNewTokens),
        len: new Int32Array(K),
        finish: new Int32Array(K),
        stopped: new Map(),
      };
      const seeds = Uint32Array.from({ length: K }, (_, k) => deriveSeed(request.seed, "generate", p, k));
      this.sampler.admit(
        group.id,
        Int32Array.from(prompt),
        K,
        seeds,
        options,
        group.tokens,
        group.logp,
        group.len,
        group.finish,
      );
      return group;
    });
    return new Promise((resolve) => {
      const job: Job = { groups, onStep, resolve };
      this.jobs.add(job);
      // An abandoned request (the client went away) stops decoding; its samples end as stopped.
      signal?.addEventListener("abort", () => {
        for (const g of groups)
          for (let k = 0; k < g.K; k++) if (g.finish[k] === FINISH_RUNNING) this.sampler.stop(g.id, k);
      });
      this.afterStep(job);
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.jobs.size > 0) {
        this.sampler.step(1);
        for (const job of [...this.jobs]) this.afterStep(job);
        // Lets the server read new requests (and admit them) between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.looping = false;
    }
  }

  /** Stop strings, streaming, and the end of a job. */
  private afterStep(job: Job): void {
    if (!this.jobs.has(job)) return;
    let running = 0;
    for (const g of job.groups) running += this.checkStops(g);
    if (running > 0 && job.onStep === undefined) return;
    const samples = job.groups.flatMap((g) => Array.from({ length: g.K }, (_, k) => view(g, k)));
    job.onStep?.(samples);
    if (running > 0) return;
    for (const g of job.groups) this.sampler.release(g.id);
    this.jobs.delete(job);
    job.resolve(samples);
  }

  /** Ends samples whose text reached a stop string; returns how many of the group still run. */
  private checkStops(g: Group): number {
    let running = 0;
    for (let k = 0; k < g.K; k++) {
      if (g.stopStrings.length > 0 && !g.stopped.has(k)) {
        const ids = g.tokens.subarray(k * g.maxNew, k * g.maxNew + g.len[k]!);
        const hit = findStop(this.tokenizer, g.prompt, ids, g.stopStrings);
        if (hit !== undefined) {
          g.stopped.set(k, hit);
          if (g.finish[k] === FINISH_RUNNING) this.sampler.stop(g.id, k);
        }
      }
      if (g.finish[k] === FINISH_RUNNING) running++;
    }
    return running;
  }
}

function view(g: Group, k: number): LiveSample {
  const stop = g.stopped.get(k);
  const n = stop?.tokens ?? g.len[k]!;
  const at = k * g.maxNew;
  const f = g.finish[k]!;
  return {
    prompt: g.prompt,
    tokens: Array.from(g.tokens.subarray(at, at + n)),
    tokenLogprobs: Array.from(g.logp.subarray(at, at + n)),
    ...(stop && { stoppedText: stop.text }),
    finishReason: stop
      ? "stop"
      : f === FINISH_RUNNING
        ? null
        : f === FINISH_EOS
          ? "eos"
          : f === FINISH_LENGTH
            ? "length"
            : "stop",
  };
}
