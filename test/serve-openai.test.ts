import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { ContinuousBatcher } from "../src/model/batcher.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, loadTokenizer, saveTokenizer, type Tokenizer } from "../src/model/tokenizer.js";
import { type RunningServer, serve } from "../src/serve/server.js";
import { BIN } from "./run-fixture.js";

const TEMPLATE =
  "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

let dir: string;
let model: CausalLM;
let tokenizer: Tokenizer;
let server: RunningServer;
let client: OpenAI;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "dno-serve-"));
  const config = parseConfig(
    { vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
    "test",
  );
  CausalLM.init(config, 1, 0.3).save(dir);
  saveTokenizer(byteTokenizer({ chatTemplate: TEMPLATE }), dir);
  model = CausalLM.load(dir);
  tokenizer = loadTokenizer(dir);
  server = await serve({
    model,
    tokenizer,
    modelName: "tiny",
    host: "127.0.0.1",
    port: 0,
    maxConcurrentRequests: 64,
    maxTokensInFlight: 100_000,
    defaultMaxTokens: 16,
  });
  client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 });
});

after(() => server.close());

/** What `dno generate` draws offline for these prompt ids and settings. */
async function offline(
  prompts: number[][],
  o: {
    n: number;
    seed: number;
    max: number;
    temperature?: number;
    topP?: number;
    topK?: number;
    stop?: string[];
  },
) {
  return (
    await model.generate(prompts, {
      samplesPerPrompt: o.n,
      temperature: o.temperature ?? 1,
      topP: o.topP ?? 1,
      topK: o.topK ?? 0,
      maxNewTokens: o.max,
      eosTokenIds: tokenizer.eosTokenIds,
      seed: o.seed,
      tokenizer,
      stopStrings: o.stop ?? [],
    })
  ).flat();
}

const finishOf = (r: string) => (r === "length" ? "length" : "stop");

test("completions: the samples, token ids, log-probs and usage of offline generation with the same seed", async () => {
  const prompts = ["hi there", "abc"];
  const r = await client.completions.create({
    model: "tiny",
    prompt: prompts,
    n: 3,
    max_tokens: 12,
    temperature: 0.8,
    top_p: 0.9,
    seed: 7,
    logprobs: 0,
    // @ts-expect-error vLLM's and dno serve's extensions
    top_k: 50,
    return_token_ids: true,
  });
  const ids = prompts.map((p) => tokenizer.encode(p));
  const want = await offline(ids, { n: 3, seed: 7, max: 12, temperature: 0.8, topP: 0.9, topK: 50 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices.length, 6);
  r.choices.forEach((c, i) => {
    const w = want[i]!;
    assert.equal(c.index, i);
    assert.equal(c.text, w.text);
    assert.deepEqual((c as unknown as { token_ids: number[] }).token_ids, w.tokens);
    assert.equal(c.finish_reason, finishOf(w.finishReason));
    const lps = c.logprobs!.token_logprobs!;
    assert.equal(lps.length, w.tokens.length);
    assert.ok(Math.abs(lps.reduce((s, x) => s + x, 0) - w.logprob) < 1e-4);
    assert.equal(c.logprobs!.tokens!.length, w.tokens.length);
  });
  const completion = want.reduce((s, w) => s + w.tokens.length, 0);
  const prompt = ids[0]!.length + ids[1]!.length;
  assert.deepEqual(r.usage, {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  });
});

test("continuous batching: a request sent mid-decode joins the running batch and finishes first", async () => {
  const long = tokenizer.encode("long");
  const [greedy] = await offline([long], { n: 1, seed: 0, max: 200, temperature: 0 });
  assert.equal(greedy!.tokens.length, 200, "the greedy continuation runs to the limit (no EOS)");
  const stream = await client.completions.create({
    model: "tiny",
    prompt: long,
    max_tokens: 200,
    temperature: 0,
    stream: true,
  });
  let text = "";
  let shortDoneWhileLongRan = false;
  let short: Promise<OpenAI.Completion> | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? "";
    if (short === undefined) {
      // The long request is decoding: this one is admitted into its batch.
      short = client.completions.create({ model: "tiny", prompt: "ab", n: 4, max_tokens: 5, seed: 3 });
      short.then(() => {
        shortDoneWhileLongRan = true;
      });
    }
    if (chunk.choices[0]?.finish_reason) assert.ok(shortDoneWhileLongRan, "the short request finished first");
  }
  assert.equal(text, greedy!.text);
  const s = await short!;
  const want = await offline([tokenizer.encode("ab")], { n: 4, seed: 3, max: 5 });
  assert.deepEqual(
    s.choices.map((c) => c.text),
    want.map((w) => w.text),
  );
});

test("concurrent requests with different settings each get what they would alone", async () => {
  const settings = Array.from({ length: 8 }, (_, i) => ({
    prompt: `p${i} q`,
    n: 1 + (i % 3),
    max: 4 + i,
    temperature: i % 2 === 0 ? 0.7 : 1.2,
    seed: 100 + i,
    stop: i === 5 ? ["e"] : undefined,
  }));
  const answers = await Promise.all(
    settings.map((s) =>
      client.completions.create({
        model: "tiny",
        prompt: s.prompt,
        n: s.n,
        max_tokens: s.max,
        temperature: s.temperature,
        seed: s.seed,
        ...(s.stop && { stop: s.stop }),
      }),
    ),
  );
  for (let i = 0; i < settings.length; i++) {
    const s = settings[i]!;
    const want = await offline([tokenizer.encode(s.prompt)], { ...s, stop: s.stop ?? [] });
    assert.deepEqual(
      answers[i]!.choices.map((c) => [c.text, c.finish_reason]),
      want.map((w) => [w.text, finishOf(w.finishReason)]),
      `request ${i}`,
    );
  }
});

test("chat completions apply the chat template; streamed deltas add up to the answer, usage last", async () => {
  const messages = [{ role: "user" as const, content: "say hi" }];
  const body = { model: "tiny", messages, n: 2, max_tokens: 10, seed: 5, temperature: 0.9 };
  const r = await client.chat.completions.create({ ...body, logprobs: true });
  const ids = tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), {
    addSpecialTokens: false,
  });
  const want = await offline([ids], { n: 2, seed: 5, max: 10, temperature: 0.9 });
  assert.equal(r.object, "chat.completion");
  assert.deepEqual(
    r.choices.map((c) => [c.message.role, c.message.content, c.finish_reason]),
    want.map((w) => ["assistant", w.text, finishOf(w.finishReason)]),
  );
  assert.equal(r.choices[0]!.logprobs!.content!.length, want[0]!.tokens.length);
  assert.equal(r.usage!.prompt_tokens, ids.length);

  const stream = await client.chat.completions.create({
    ...body,
    stream: true,
    stream_options: { include_usage: true },
  });
  const texts = ["", ""];
  const finishes: (string | null)[] = [null, null];
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      texts[c.index] += c.delta.content ?? "";
      if (c.finish_reason) finishes[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.deepEqual(texts, [r.choices[0]!.message.content, r.choices[1]!.message.content]);
  assert.deepEqual(finishes, [r.choices[0]!.finish_reason, r.choices[1]!.finish_reason]);
  assert.deepEqual(usage, r.usage);
});

test("GET /v1/models lists the model; malformed requests get OpenAI-style 400s, unknown models 404", async () => {
  const models = await client.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ["tiny"],
  );
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ model: "tiny", prompt: "x", n: 0 }, /^n: /],
    [{ model: "tiny", prompt: "x", temperature: 3 }, /^temperature: /],
    [{ model: "tiny" }, /^prompt: /],
    [{ model: "tiny", prompt: "x", logprobs: 5 }, /logprobs: only logprobs: 0/],
    [{ model: "tiny", prompt: [[1, 2], [999]] }, /token 999 is outside the vocabulary/],
    [{ model: "tiny", prompt: "x", max_tokens: 100_000 }, /maximum context length/],
  ];
  for (const [body, message] of bad) {
    await assert.rejects(
      client.completions.create(body as never),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError &&
        e.status === 400 &&
        message.test((e.error as { message: string }).message) &&
        (e.error as { type: string }).type === "invalid_request_error",
      JSON.stringify(body),
    );
  }
  await assert.rejects(
    client.completions.create({ model: "gpt-4", prompt: "x" }),
    (e: unknown) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message),
  );
  const raw = await fetch(`${server.url}/chat/completions`, { method: "POST", body: "{not json" });
  assert.equal(raw.status, 400);
  assert.match(((await raw.json()) as { error: { message: string } }).error.message, /not valid JSON/);
});

test("limits on requests and tokens in flight answer 429; an abandoned request frees its place", async () => {
  const small = await serve({
    model,
    tokenizer,
    modelName: "tiny",
    host: "127.0.0.1",
    port: 0,
    maxConcurrentRequests: 1,
    maxTokensInFlight: 100_000,
    defaultMaxTokens: 16,
  });
  try {
    const c = new OpenAI({ baseURL: small.url, apiKey: "unused", maxRetries: 0 });
    const abandon = new AbortController();
    // 64 samples of up to 1,000 tokens: still decoding when the next request arrives.
    const long = await c.completions.create(
      { model: "tiny", prompt: "long", n: 64, max_tokens: 1000, seed: 1, stream: true },
      { signal: abandon.signal },
    );
    const chunks = long[Symbol.asyncIterator]();
    await chunks.next();
    await assert.rejects(
      c.completions.create({ model: "tiny", prompt: "x", max_tokens: 2 }),
      (e: unknown) =>
        e instanceof OpenAI.RateLimitError && e.status === 429 && /requests in flight/.test(e.message),
    );
    abandon.abort();
    let answered = false;
    for (let i = 0; i < 200 && !answered; i++) {
      try {
        await c.completions.create({ model: "tiny", prompt: "x", max_tokens: 2 });
        answered = true;
      } catch (e) {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    assert.ok(answered, "the abandoned request's place was freed");
    await assert.rejects(
      c.completions.create({ model: "tiny", prompt: "x", max_tokens: 1000, n: 128 }),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError && /more than the server's limit of 100000/.test(e.message),
    );
  } finally {
    await small.close();
  }
});

test("an aborted request's samples stop decoding at once", async () => {
  const batcher = new ContinuousBatcher(model, tokenizer);
  const abort = new AbortController();
  let steps = 0;
  const request = {
    prompts: [tokenizer.encode("long")],
    n: 4,
    temperature: 0,
    topP: 1,
    topK: 0,
    maxNewTokens: 200,
    eosTokenIds: tokenizer.eosTokenIds,
    seed: 0,
    stopStrings: [],
  };
  const samples = await batcher.submit(
    request,
    () => {
      if (++steps === 3) abort.abort();
    },
    abort.signal,
  );
  // Greedy from "long" runs to the 200-token limit (the continuous batching test checks it).
  for (const s of samples) {
    assert.equal(s.finishReason, "stop");
    assert.ok(s.tokens.length <= 4, `${s.tokens.length} tokens`);
  }
});

test("dno serve: SIGTERM finishes the request in flight, then exits 0", async () => {
  const child = spawn(process.execPath, [BIN, "serve", "--model", dir, "--port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /at (http:\/\/\S+\/v1)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`dno serve exited ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const name = dir.split("/").pop()!;
  const client = () => new OpenAI({ baseURL: url, apiKey: "unused", maxRetries: 0 });
  // 8 samples of up to 1,000 tokens: in flight when the signal arrives, and for a while after.
  const stream = await client().completions.create({
    model: name,
    prompt: "long",
    n: 8,
    max_tokens: 1000,
    seed: 2,
    stream: true,
  });
  const texts = Array.from({ length: 8 }, () => "");
  let signalled = false;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) texts[choice.index] += choice.text;
    if (!signalled) {
      signalled = true;
      child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 50));
      await assert.rejects(
        client().completions.create({ model: name, prompt: "x" }),
        "no new request once draining",
      );
    }
  }
  const want = await offline([tokenizer.encode("long")], { n: 8, seed: 2, max: 1000 });
  assert.deepEqual(
    texts,
    want.map((w) => w.text),
    "the request in flight was answered in full",
  );
  assert.equal(await exited, 0);
  assert.match(err, /SIGTERM: finishing the requests in flight/);
});
