/**
 * A real HTTP server on 127.0.0.1 speaking the chat-completions protocol, backed by a deterministic
 * judge: every candidate text carries its quality as `q=N`; pointwise answers score each response N,
 * pairwise answers prefer the higher q ([[C]] when equal). A question containing `fault=NAME` or
 * `fault=NAMExK` injects a fault into the first K requests carrying that exact user message (all of
 * them without K): 429 (Retry-After: 0), ratelimit (429, Retry-After: 1), 500, slow (never answers),
 * reset (connection destroyed), garbage (prose, no verdict), partial (truncated JSON content),
 * bodycut (truncated HTTP body), length (finish_reason "length"), echo (400 quoting the key),
 * biasA (pairwise: always [[A]]).
 * Benchmark prompts (dno's defaults): MT-Bench grading (`<answer>` or `<turn_2_answer>`) is answered
 * "Rating: [[q]]"; Arena-Hard (`<answer_a>`, `<answer_b>`) with A>>B / A>B / A=B / B>A / B>>A for a q
 * difference of >= 3, 1-2, 0; `fault=noverdict` makes the first Arena-Hard answer omit the label.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRequest {
  /** The fault tag of the question, or "" */
  tag: string;
  /** The first line of the user message. */
  firstLine: string;
  question: string;
  at: number;
  outcome: string;
}

export interface FakeJudge {
  baseUrl: string;
  requests: FakeRequest[];
  maxInFlight: number;
  /** Tokens in the usage of answers delivered whole. */
  promptTokens: number;
  completionTokens: number;
  /** The q values in the order each pointwise prompt showed them. */
  shownOrders: number[][];
  authorizations: string[];
  close(): Promise<void>;
}

const quality = (text: string): number => Number(/q=(\d+)/.exec(text)?.[1] ?? "0");

const block = (user: string, name: string): string | undefined =>
  new RegExp(`<${name}>\\n([\\s\\S]*?)\\n</${name}>`).exec(user)?.[1];

/** Answers dno's MT-Bench and Arena-Hard prompts; undefined for any other prompt. */
function benchmarkAnswer(user: string, finishing: boolean, tag: string): string | undefined {
  const rated = block(user, "turn_2_answer") ?? block(user, "answer");
  if (rated !== undefined) return `The answer has q=${quality(rated)}.\nRating: [[${quality(rated)}]]`;
  const a = block(user, "answer_a");
  const b = block(user, "answer_b");
  if (a === undefined || b === undefined) return undefined;
  const d = quality(a) - quality(b);
  const label = d >= 3 ? "A>>B" : d > 0 ? "A>B" : d === 0 ? "A=B" : d > -3 ? "B>A" : "B>>A";
  if (tag === "noverdict" && !finishing) return `A has q=${quality(a)}, B has q=${quality(b)}.`;
  return `A has q=${quality(a)}, B has q=${quality(b)}.\nMy final verdict: [[${label}]]`;
}

function judgeAnswer(user: string, tag: string): string {
  const blocks = [...user.matchAll(/<response id="(\d+)">\n([\s\S]*?)\n<\/response>/g)];
  if (blocks.length > 0) {
    const answer: Record<string, { justification: string; score: number }> = {};
    for (const [, id, text] of blocks)
      answer[id!] = { justification: `q is ${quality(text!)}`, score: quality(text!) };
    return `Here are the scores:\n\`\`\`json\n${JSON.stringify(answer)}\n\`\`\``;
  }
  const a = quality(/<response_a>\n([\s\S]*?)\n<\/response_a>/.exec(user)?.[1] ?? "");
  const b = quality(/<response_b>\n([\s\S]*?)\n<\/response_b>/.exec(user)?.[1] ?? "");
  if (tag === "biasA") return "The first one reads better.\n[[A]]";
  return `A has q=${a}, B has q=${b}.\n${a > b ? "[[A]]" : a < b ? "[[B]]" : "[[C]]"}`;
}

export async function startFakeJudge(options: { key?: string; delayMs?: number } = {}): Promise<FakeJudge> {
  const attempts = new Map<string, number>();
  let inFlight = 0;
  const judge: FakeJudge = {
    baseUrl: "",
    requests: [],
    maxInFlight: 0,
    promptTokens: 0,
    completionTokens: 0,
    shownOrders: [],
    authorizations: [],
    close: async () => {},
  };
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    judge.maxInFlight = Math.max(judge.maxInFlight, inFlight);
    // A request leaves the count once the server has handed off its answer (or dropped it), before the
    // client can see it, so a slow 'close' event under load never looks like overlap.
    let left = false;
    const leave = () => {
      if (!left) inFlight--;
      left = true;
    };
    res.on("finish", leave);
    res.on("close", leave);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    judge.authorizations.push(String(req.headers.authorization ?? ""));
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      return json(res, 404, { error: { message: "not found" } });
    }
    if (options.key && req.headers.authorization !== `Bearer ${options.key}`) {
      judge.requests.push({ tag: "", firstLine: "", question: "", at: Date.now(), outcome: "401" });
      return json(res, 401, { error: { message: "Incorrect API key provided" } });
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      model: string;
      messages: { role: string; content: string }[];
    };
    const last = body.messages.at(-1)!.content;
    // A benchmark judge asked to finish its verdict: the conversation's first user message holds the task.
    const user = body.messages.find((m) => m.role === "user")!.content;
    const finishing = body.messages.filter((m) => m.role === "user").length > 1;
    const question = /<(question|turn_1_question|user_prompt)>\n([\s\S]*?)\n<\/\1>/.exec(user)?.[2] ?? "";
    const fault = /fault=([A-Za-z0-9]+?)(?:x(\d+))?\b/.exec(question);
    const count = attempts.get(last) ?? 0;
    attempts.set(last, count + 1);
    const tag = fault?.[1] ?? "";
    const active = fault !== null && (fault[2] === undefined || count < Number(fault[2]));
    const outcome = active && tag !== "biasA" ? tag : "ok";
    judge.requests.push({ tag, firstLine: user.split("\n")[0]!, question, at: Date.now(), outcome });
    const blocks = [...user.matchAll(/<response id="\d+">\n([\s\S]*?)\n<\/response>/g)];
    if (blocks.length > 0) judge.shownOrders.push(blocks.map((m) => quality(m[1]!)));

    await new Promise((r) => setTimeout(r, options.delayMs ?? 5));
    switch (outcome) {
      case "429":
        return json(res, 429, { error: { message: "rate limited" } }, { "retry-after": "0" });
      case "ratelimit":
        return json(res, 429, { error: { message: "rate limited" } }, { "retry-after": "1" });
      case "500":
        return json(res, 500, { error: { message: "internal error" } });
      case "slow":
        return; // never answers; the client's timeout closes the connection
      case "reset":
        leave();
        req.socket.destroy();
        return;
      case "echo":
        return json(res, 400, { error: { message: `bad request for key ${options.key}` } });
    }
    let content = benchmarkAnswer(user, finishing, tag) ?? judgeAnswer(user, tag);
    if (outcome === "garbage") content = "Both responses have merit; I cannot pick one.";
    if (outcome === "partial") content = content.slice(0, Math.floor(content.length / 2));
    const usage = {
      prompt_tokens: Math.ceil(user.length / 4),
      completion_tokens: Math.ceil(content.length / 4),
    };
    const completion = {
      id: `chatcmpl-${judge.requests.length}`,
      object: "chat.completion",
      created: 0,
      model: body.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content },
          finish_reason: outcome === "length" ? "length" : "stop",
        },
      ],
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    };
    if (outcome === "bodycut") {
      const text = JSON.stringify(completion);
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(text.slice(0, Math.floor(text.length / 2)));
    }
    judge.promptTokens += usage.prompt_tokens;
    judge.completionTokens += usage.completion_tokens;
    return json(res, 200, completion);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) json(res, 500, { error: { message: e.message } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  judge.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  judge.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return judge;
}
