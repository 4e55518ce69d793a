/**
 * `dno serve`: an OpenAI-compatible HTTP server on the native engine. `GET /v1/models`,
 * `POST /v1/completions` and `POST /v1/chat/completions` (the model's chat template), plain JSON or
 * server-sent events. Every request's samples join one continuously batched decode (src/model/
 * batcher.ts). Too many requests or tokens in flight answer 429; `close()` stops taking requests and
 * resolves once those in flight have been answered (the CLI calls it on SIGTERM).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { z } from "zod";
import { ContinuousBatcher, type LiveSample } from "../model/batcher.js";
import type { CausalLM } from "../model/model.js";
import { decodeResponse, type Tokenizer } from "../model/tokenizer.js";
import {
  type ChatRequest,
  type CompletionRequest,
  chatRequestSchema,
  completionRequestSchema,
  describeRequestError,
  errorBody,
} from "./protocol.js";

export interface ServeOptions {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** The id clients put in `model`. */
  modelName: string;
  host: string;
  port: number;
  /** Requests being answered at once, at most; more answer 429. */
  maxConcurrentRequests: number;
  /** Sum over requests in flight of prompt tokens + samples x max_tokens, at most; more answer 429. */
  maxTokensInFlight: number;
  /** max_tokens when a request gives none. */
  defaultMaxTokens: number;
}

export interface RunningServer {
  /** The port listened on (the OS picks one for port 0). */
  port: number;
  url: string;
  /** Stops taking requests; resolves when the requests in flight have been answered. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ReturnType<typeof errorBody>,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.error.message);
  }
}

const badRequest = (message: string, param: string | null = null) =>
  new HttpError(400, errorBody(message, "invalid_request_error", param));

/** What one request asks of the engine, whatever the endpoint. */
interface Job {
  prompts: number[][];
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  logprobs: boolean;
  returnTokenIds: boolean;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  const { model, tokenizer } = options;
  const batcher = new ContinuousBatcher(model, tokenizer);
  const eos = [...new Set([...tokenizer.eosTokenIds, ...model.config.eosTokenIds])];
  const created = Math.floor(Date.now() / 1000);
  let inFlight = 0;
  let tokensInFlight = 0;
  let closing = false;
  let drained: (() => void) | undefined;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err =
        e instanceof HttpError
          ? e
          : new HttpError(500, errorBody(`internal error: ${(e as Error).message}`, "server_error"));
      if (res.headersSent) {
        // A stream already started: report the error as an event, then end it.
        res.end(`data: ${JSON.stringify(err.body)}\n\n`);
        return;
      }
      send(res, err.status, err.body, err.headers);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && (path === "/v1/models" || path === "/health")) {
      if (path === "/health") return send(res, 200, { status: "ok" });
      return send(res, 200, {
        object: "list",
        data: [{ id: options.modelName, object: "model", created, owned_by: "dno" }],
      });
    }
    const endpoint =
      path === "/v1/completions" ? "completions" : path === "/v1/chat/completions" ? "chat" : null;
    if (endpoint === null) {
      throw new HttpError(
        404,
        errorBody(`no route ${req.method} ${path}`, "invalid_request_error", null, "not_found"),
      );
    }
    if (req.method !== "POST") throw badRequest(`${path} takes POST`);
    if (closing) {
      throw new HttpError(503, errorBody("the server is shutting down", "server_error"), {
        "retry-after": "1",
      });
    }
    const body = await readJson(req);
    const job = endpoint === "completions" ? completionJob(body) : chatJob(body);
    const cost = job.prompts.reduce((s, p) => s + p.length + job.n * job.maxTokens, 0);
    if (cost > options.maxTokensInFlight) {
      throw badRequest(
        `this request needs ${cost} tokens (prompt + n x max_tokens), more than the server's limit of ${options.maxTokensInFlight}`,
      );
    }
    if (inFlight >= options.maxConcurrentRequests || tokensInFlight + cost > options.maxTokensInFlight) {
      const what =
        inFlight >= options.maxConcurrentRequests
          ? `${inFlight} requests in flight (limit ${options.maxConcurrentRequests})`
          : `${tokensInFlight} tokens in flight (limit ${options.maxTokensInFlight})`;
      throw new HttpError(
        429,
        errorBody(`server busy: ${what}; retry later`, "rate_limit_error", null, "rate_limit_exceeded"),
        {
          "retry-after": "1",
        },
      );
    }
    inFlight++;
    tokensInFlight += cost;
    try {
      await answer(endpoint, job, res);
    } finally {
      inFlight--;
      tokensInFlight -= cost;
      if (closing && inFlight === 0) drained?.();
    }
  }

  function completionJob(body: unknown): Job {
    const r = parse(completionRequestSchema, body);
    checkModel(r.model);
    const prompts = promptList(r.prompt);
    return jobOf(r, prompts, r.max_tokens, r.logprobs === 0);
  }

  function chatJob(body: unknown): Job {
    const r = parse(chatRequestSchema, body);
    checkModel(r.model);
    if (tokenizer.chatTemplate === undefined) {
      throw badRequest("this model's tokenizer has no chat template: use /v1/completions", "messages");
    }
    const messages = r.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
    }));
    const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const prompt = tokenizer.encode(text, { addSpecialTokens: false });
    return jobOf(r, [prompt], r.max_completion_tokens ?? r.max_tokens, r.logprobs === true);
  }

  function jobOf(
    r: CompletionRequest | ChatRequest,
    prompts: number[][],
    maxTokens: number | null | undefined,
    logprobs: boolean,
  ): Job {
    const max = maxTokens ?? options.defaultMaxTokens;
    const limit = model.config.maxPositionEmbeddings;
    prompts.forEach((p, i) => {
      if (p.length === 0) throw badRequest(`prompt ${i} has no tokens`, "prompt");
      const bad = p.find((t) => t >= model.config.vocabSize);
      if (bad !== undefined)
        throw badRequest(`prompt ${i}: token ${bad} is outside the vocabulary`, "prompt");
      if (p.length + max > limit) {
        throw badRequest(
          `this model's maximum context length is ${limit} tokens; the prompt has ${p.length} and max_tokens is ${max}`,
          "max_tokens",
        );
      }
    });
    const topK = r.top_k ?? 0;
    return {
      prompts,
      n: r.n ?? 1,
      temperature: r.temperature ?? 1,
      topP: r.top_p ?? 1,
      topK: Math.max(topK, 0),
      maxTokens: max,
      seed: r.seed == null ? randomBytes(4).readUInt32LE() : r.seed >>> 0,
      stop: r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop,
      stream: r.stream === true,
      includeUsage: r.stream_options?.include_usage === true,
      logprobs,
      returnTokenIds: r.return_token_ids === true,
    };
  }

  function promptList(prompt: CompletionRequest["prompt"]): number[][] {
    if (typeof prompt === "string") return [tokenizer.encode(prompt)];
    if (typeof prompt[0] === "number") return [prompt as number[]];
    return (prompt as (string | number[])[]).map((p) => (typeof p === "string" ? tokenizer.encode(p) : p));
  }

  function checkModel(name: string): void {
    if (name !== options.modelName) {
      throw new HttpError(
        404,
        errorBody(
          `The model \`${name}\` does not exist (this server has \`${options.modelName}\`)`,
          "invalid_request_error",
          "model",
          "model_not_found",
        ),
      );
    }
  }

  async function answer(endpoint: "completions" | "chat", job: Job, res: ServerResponse): Promise<void> {
    const id = `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const object = endpoint === "chat" ? "chat.completion" : "text_completion";
    const base = { id, object, created: Math.floor(Date.now() / 1000), model: options.modelName };
    const promptTokens = job.prompts.reduce((s, p) => s + p.length, 0);
    const usageOf = (samples: LiveSample[]) => {
      const completion = samples.reduce((s, x) => s + x.tokens.length, 0);
      return {
        prompt_tokens: promptTokens,
        completion_tokens: completion,
        total_tokens: promptTokens + completion,
      };
    };
    const request = {
      prompts: job.prompts,
      n: job.n,
      temperature: job.temperature,
      topP: job.topP,
      topK: job.topK,
      maxNewTokens: job.maxTokens,
      eosTokenIds: eos,
      seed: job.seed,
      stopStrings: job.stop,
    };
    const abandoned = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abandoned.abort();
    });
    if (!job.stream) {
      const samples = await batcher.submit(request, undefined, abandoned.signal);
      const choices = samples.map((s, i) => choice(endpoint, job, s, i, textOf(s)));
      send(res, 200, {
        ...base,
        choices,
        usage: usageOf(samples),
        ...(job.returnTokenIds && {
          prompt_token_ids: job.prompts.length === 1 ? job.prompts[0] : job.prompts,
        }),
      });
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    const chunkObject = endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
    const event = (data: unknown) => {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    const emitted = Array.from({ length: job.prompts.length * job.n }, () => ({
      text: 0,
      tokens: 0,
      done: false,
    }));
    const maxStop = Math.max(0, ...job.stop.map((s) => s.length));
    if (endpoint === "chat") {
      for (let i = 0; i < job.prompts.length * job.n; i++) {
        event({
          ...base,
          object: chunkObject,
          choices: [
            { index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
          ],
        });
      }
    }
    const flush = (samples: LiveSample[]) => {
      samples.forEach((s, i) => {
        const e = emitted[i]!;
        if (e.done) return;
        const text = textOf(s);
        // Held back: a trailing partial character, and what could still become a stop string.
        let safe = text.length;
        if (s.finishReason === null) {
          if (text.endsWith("\uFFFD")) safe = text.lastIndexOf("\uFFFD");
          safe = Math.max(e.text, safe - Math.max(0, maxStop - 1));
        }
        const delta = text.slice(e.text, safe);
        const finish = s.finishReason === null ? null : s.finishReason === "length" ? "length" : "stop";
        if (delta === "" && finish === null) return;
        const newTokens = s.tokens.slice(e.tokens);
        const lp = job.logprobs
          ? logprobsOf(
              endpoint,
              { ...s, tokens: newTokens, tokenLogprobs: s.tokenLogprobs.slice(e.tokens) },
              e.text,
            )
          : null;
        e.text = safe;
        e.tokens = s.tokens.length;
        if (finish !== null) e.done = true;
        const c =
          endpoint === "chat"
            ? { index: i, delta: delta === "" ? {} : { content: delta }, logprobs: lp, finish_reason: finish }
            : { index: i, text: delta, logprobs: lp, finish_reason: finish };
        event({
          ...base,
          object: chunkObject,
          choices: [{ ...c, ...(job.returnTokenIds && { token_ids: newTokens }) }],
        });
      });
    };
    const samples = await batcher.submit(request, flush, abandoned.signal);
    flush(samples);
    if (job.includeUsage) event({ ...base, object: chunkObject, choices: [], usage: usageOf(samples) });
    res.end("data: [DONE]\n\n");
  }

  function textOf(s: LiveSample): string {
    return s.stoppedText ?? decodeResponse(tokenizer, s.prompt, s.tokens);
  }

  function choice(endpoint: "completions" | "chat", job: Job, s: LiveSample, index: number, text: string) {
    const finish_reason = s.finishReason === "length" ? "length" : "stop";
    const logprobs = job.logprobs ? logprobsOf(endpoint, s, 0) : null;
    const ids = job.returnTokenIds ? { token_ids: s.tokens } : {};
    if (endpoint === "chat") {
      return { index, message: { role: "assistant", content: text }, logprobs, finish_reason, ...ids };
    }
    return { index, text, logprobs, finish_reason, ...ids };
  }

  /** The sampled tokens' log-probs (temperature 1), in each endpoint's shape; no alternatives. */
  function logprobsOf(endpoint: "completions" | "chat", s: LiveSample, offset: number) {
    const pieces = s.tokens.map((t) => tokenizer.decode([t]));
    if (endpoint === "chat") {
      return {
        content: pieces.map((token, i) => ({
          token,
          logprob: s.tokenLogprobs[i]!,
          bytes: [...Buffer.from(token, "utf8")],
          top_logprobs: [],
        })),
      };
    }
    const offsets: number[] = [];
    let at = offset;
    for (const p of pieces) {
      offsets.push(at);
      at += p.length;
    }
    return { tokens: pieces, token_logprobs: s.tokenLogprobs, top_logprobs: null, text_offset: offsets };
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}/v1`,
    close: () => {
      closing = true;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const answered =
        inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      return answered.then(() => {
        server.closeIdleConnections();
        return done;
      });
    },
  };
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const { message, param } = describeRequestError(parsed.error);
    throw badRequest(message, param);
  }
  return parsed.data;
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(badRequest(`the request body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (e) {
        reject(badRequest(`the body is not valid JSON: ${(e as Error).message}`));
      }
    });
    req.on("error", reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
