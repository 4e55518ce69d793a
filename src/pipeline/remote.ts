/**
 * `sampler: { kind: openai }`: samples from an OpenAI-compatible server (vLLM, SGLang, llama.cpp's
 * server, Ollama, `dno serve`). Each prompt is sent as its token ids (the chat template applied here,
 * as the engine sampler does) to `/v1/completions` with n = K, so the server continues exactly the
 * prompt dno would; each sample comes back as its token ids where the server returns them
 * (`return_token_ids`, vLLM's and `dno serve`'s extension), else its text is re-tokenised. Requests
 * follow the judge's rules (src/oracle/reliability.ts): a concurrency limit, timeouts, retries with
 * backoff on 429/5xx/connection errors; a wrong key, URL or model stops the run; a request that still
 * fails gives K failed samples (null), which are never candidates.
 *
 * With `launch`, the stage starts the server itself on pi_t's checkpoint (`{policy}`, or `{policy_gguf}`
 * exported first), waits for the readiness URL, and stops it (its whole process group) at the end of the
 * stage. A server left by a killed run is stopped by the next one (its pid is kept in the run directory).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { deriveSeed } from "../core/rng.js";
import { readApiKey } from "../oracle/api-key.js";
import { classifyOpenAIError } from "../oracle/http-status.js";
import { type Attempt, CallRunner } from "../oracle/reliability.js";
import { emptyUsage } from "../oracle/types.js";
import { fillTemplate, signalGroup, startShell, templateNames } from "../util/command.js";
import { DnoError } from "../util/errors.js";
import type { RunConfig } from "./config.js";
import {
  encodePromptText,
  exportPolicyGguf,
  loadPolicy,
  loadPolicyText,
  type PolicyPrompt,
  type PolicyText,
  type SampledText,
  type SampleOptions,
} from "./policy.js";
import type { Sampler, SamplerContext, SamplerSession } from "./sampler.js";

export type RemoteSamplerConfig = Extract<RunConfig["sampler"], { kind: "openai" }>;

/** Seconds a stopped server gets to exit before it is killed. */
const STOP_GRACE_MS = 10_000;

export function remoteSampler(config: RemoteSamplerConfig, ctx: SamplerContext): Sampler {
  const apiKey = readApiKey(config.apiKeyEnv, ctx.env);
  return {
    async open(policyDir, stage) {
      const text = loadPolicyText(policyDir);
      const server = config.launch ? await launch(config, ctx, policyDir, stage) : undefined;
      const baseUrl = server ? server.baseUrl : config.baseUrl;
      return {
        sample: (prompts, options, progress) =>
          sampleRemote(config, baseUrl, apiKey, text, prompts, options, progress),
        close: async () => server?.stop(),
      } satisfies SamplerSession;
    },
  };
}

interface CompletionChoice {
  index: number;
  text: string;
  finish_reason: string | null;
  token_ids?: number[];
  logprobs?: { token_logprobs?: (number | null)[] | null } | null;
}

async function sampleRemote(
  config: RemoteSamplerConfig,
  baseUrl: string,
  apiKey: string | undefined,
  policy: PolicyText,
  prompts: readonly PolicyPrompt[],
  options: SampleOptions,
  progress?: (done: number, total: number) => void,
): Promise<(SampledText | null)[][]> {
  const client = new OpenAI({ baseURL: baseUrl, apiKey: apiKey ?? "no-key", maxRetries: 0, logLevel: "off" });
  const runner = new CallRunner(
    {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      maxRetries: config.maxRetries,
      retryBaseMs: config.retryBaseMs,
      retryMaxMs: config.retryMaxMs,
      budget: {},
    },
    emptyUsage(),
  );
  const K = options.samplesPerPrompt;
  const eos = new Set(policy.tokenizer.eosTokenIds);
  let done = 0;

  async function attempt(ids: number[], seed: number, timeoutMs: number): Promise<Attempt<SampledText[]>> {
    let choices: CompletionChoice[];
    try {
      const body = {
        model: config.model,
        prompt: ids,
        n: K,
        temperature: options.temperature,
        top_p: options.topP,
        max_tokens: options.maxNewTokens,
        seed,
        logprobs: 0,
        return_token_ids: true,
        ...(options.topK > 0 && { top_k: options.topK }),
      };
      const completion = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming, {
        timeout: timeoutMs,
        maxRetries: 0,
      });
      choices = completion.choices as unknown as CompletionChoice[];
    } catch (e) {
      return classifyOpenAIError(e, timeoutMs, baseUrl, config.apiKeyEnv, apiKey);
    }
    if (!Array.isArray(choices) || choices.length !== K) {
      return { ok: false, kind: "failed", reason: `asked for ${K} samples, got ${choices?.length ?? 0}` };
    }
    const samples: SampledText[] = [];
    for (const c of [...choices].sort((a, b) => a.index - b.index)) {
      if (typeof c.text !== "string") return { ok: false, kind: "failed", reason: "a choice has no text" };
      let tokens = Array.isArray(c.token_ids)
        ? [...c.token_ids]
        : policy.tokenizer.encode(c.text, { addSpecialTokens: false });
      // Some servers keep the EOS they drew among the ids; dno's samples never hold it.
      if (tokens.length > 0 && eos.has(tokens[tokens.length - 1]!)) tokens = tokens.slice(0, -1);
      const lps = c.logprobs?.token_logprobs;
      const logprob =
        Array.isArray(lps) &&
        lps.length >= tokens.length &&
        lps.slice(0, tokens.length).every((x) => typeof x === "number")
          ? (lps.slice(0, tokens.length) as number[]).reduce((s, x) => s + x, 0)
          : null;
      samples.push({
        text: Array.isArray(c.token_ids) ? policy.tokenizer.decode(tokens) : c.text,
        tokens,
        logprob,
        finished: c.finish_reason === "stop",
      });
    }
    return { ok: true, value: samples, raw: "", promptTokens: 0, completionTokens: 0 };
  }

  return Promise.all(
    prompts.map(async (prompt, p) => {
      const ids = encodePromptText(policy, prompt);
      const seed = deriveSeed(options.seed, "remote", (options.firstPromptIndex ?? 0) + p);
      const outcome = await runner.call((timeoutMs) => attempt(ids, seed, timeoutMs));
      progress?.(++done * K, prompts.length * K);
      return outcome.ok ? outcome.value : Array.from({ length: K }, () => null);
    }),
  );
}

interface LaunchedServer {
  baseUrl: string;
  stop(): Promise<void>;
}

/** Starts the launch command for pi_t and waits until its readiness URL answers 200. */
async function launch(
  config: RemoteSamplerConfig,
  ctx: SamplerContext,
  policyDir: string,
  stage: string,
): Promise<LaunchedServer> {
  const l = config.launch!;
  const serveDir = join(ctx.runDir, "serve");
  mkdirSync(serveDir, { recursive: true });
  const pidFile = join(serveDir, "server.pid");
  stopLeftover(pidFile);
  const port = l.port ?? (await freePort());
  const values: Record<string, string> = { policy: policyDir, port: String(port), seed: String(ctx.seed) };
  if (templateNames(l.command).includes("policy_gguf")) {
    const gguf = join(serveDir, "policy.gguf");
    rmSync(gguf, { force: true });
    exportPolicyGguf(loadPolicy(policyDir), gguf);
    values.policy_gguf = gguf;
  }
  const command = fillTemplate(l.command, values, "sampler.launch.command");
  const url = (template: string) => template.replaceAll("{port}", String(port));
  const baseUrl = url(config.baseUrl);
  const ready = url(l.ready ?? `${config.baseUrl.replace(/\/+$/, "")}/models`);
  const logFile = join(serveDir, `${stage.replaceAll("/", "-")}.log`);
  const child = startShell(command, { env: l.env, logFile });
  writeFileSync(pidFile, String(child.pid));
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) =>
      resolve(signal ? `killed by ${signal}` : `exited with status ${code}`),
    ),
  );
  const onExit = () => signalGroup(child, "SIGKILL");
  process.once("exit", onExit);
  const stop = async () => {
    process.removeListener("exit", onExit);
    await stopChild(child, exited);
    rmSync(pidFile, { force: true });
  };
  const deadline = Date.now() + l.readyTimeoutMs;
  for (;;) {
    const how = await Promise.race([exited, sleep(250).then(() => undefined)]);
    if (how !== undefined) {
      rmSync(pidFile, { force: true });
      throw new DnoError(
        `${stage}: the sampler's server ${how} before it was ready: ${command} (log: ${logFile})`,
      );
    }
    if (await answers(ready)) return { baseUrl, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new DnoError(
        `${stage}: the sampler's server was not ready at ${ready} after ${l.readyTimeoutMs} ms: ${command} (log: ${logFile})`,
      );
    }
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** SIGTERM to the server's process group; SIGKILL if it is still there after the grace period. */
async function stopChild(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  signalGroup(child, "SIGTERM");
  const timer = sleep(STOP_GRACE_MS).then(() => "timeout");
  if ((await Promise.race([exited, timer])) === "timeout") {
    signalGroup(child, "SIGKILL");
    await exited;
  }
}

/** A server launched by a run that was killed: its process group is ended before a new one starts. */
function stopLeftover(pidFile: string): void {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8"));
  if (Number.isInteger(pid) && pid > 1) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  rmSync(pidFile, { force: true });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
