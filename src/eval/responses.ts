import { z } from "zod";
import { DnoError } from "../util/errors.js";
import { parseJsonText, readTextFile } from "../util/files.js";
import { readInputRecords } from "../util/jsonl.js";
import { describeZodError } from "../util/zod.js";

/**
 * A response to an evaluation prompt: `{ id?, prompt, response }` (JSONL); AlpacaEval's
 * `{ instruction, output }` (a JSON array such as model_outputs.json, or JSONL); or `dno generate`'s
 * `{ id, prompt | messages, responses: [{ text }] }`, whose first sample is taken. With `messages`, the
 * prompt shown to the judge is the last user message.
 */
const responseRecordSchema = z
  .looseObject({
    id: z.union([z.string(), z.number()]).optional(),
    prompt: z.string().optional(),
    instruction: z.string().optional(),
    messages: z.array(z.looseObject({ role: z.string(), content: z.string() })).optional(),
    response: z.string().optional(),
    output: z.string().optional(),
    responses: z
      .array(z.looseObject({ text: z.string() }))
      .min(1)
      .optional(),
  })
  .refine((r) => promptOf(r) !== undefined, {
    message: "needs a prompt (or instruction, or messages with a user message)",
  })
  .refine((r) => (r.response ?? r.output ?? r.responses) !== undefined, {
    message: "needs a response (or output, or responses: [{text}])",
  });

function promptOf(r: {
  prompt?: string | undefined;
  instruction?: string | undefined;
  messages?: { role: string; content: string }[] | undefined;
}): string | undefined {
  return r.prompt ?? r.instruction ?? r.messages?.findLast((m) => m.role === "user")?.content;
}

export interface EvalPrompt {
  id?: string;
  prompt: string;
}

export interface ResponseRecord extends EvalPrompt {
  response: string;
  /** Samples the record held when it came from `dno generate` with K > 1 (only the first is used). */
  samples?: number;
}

function normalise(r: z.infer<typeof responseRecordSchema>): ResponseRecord {
  const out: ResponseRecord = {
    prompt: promptOf(r)!,
    response: (r.response ?? r.output ?? r.responses![0]!.text)!,
  };
  if (r.id !== undefined) out.id = String(r.id);
  if (r.responses && r.responses.length > 1) out.samples = r.responses.length;
  return out;
}

/** Reads responses from JSONL (errors at file:line) or a JSON array (errors at the record index). */
export function readResponses(file: string): ResponseRecord[] {
  const head = readTextFile(file).trimStart();
  if (!head.startsWith("[")) {
    return readInputRecords(file, responseRecordSchema, "responses", (r) => r.id).map((r) =>
      normalise(r.value),
    );
  }
  const value = parseJsonText(head, file) as unknown[];
  if (value.length === 0) throw new DnoError(`${file}: no responses`);
  return value.map((record, i) => {
    const parsed = responseRecordSchema.safeParse(record);
    if (!parsed.success) throw new DnoError(`${file}: record ${i}: ${describeZodError(parsed.error)}`);
    return normalise(parsed.data);
  });
}

const promptRecordSchema = z.looseObject({
  id: z.union([z.string(), z.number()]).optional(),
  prompt: z.string(),
});

/** Reads evaluation prompts, JSONL `{ id?, prompt }` (errors at file:line). */
export function readPrompts(file: string): EvalPrompt[] {
  return readInputRecords(file, promptRecordSchema, "prompts", (r) => r.id).map(({ value: r }) => ({
    ...(r.id !== undefined && { id: String(r.id) }),
    prompt: r.prompt,
  }));
}

export interface ResponsePair {
  id?: string;
  prompt: string;
  model: string;
  baseline: string;
}

/**
 * Pairs each model response with the baseline's response to the same prompt: by `id` when every
 * record of both files has one, otherwise by the prompt text. Every model record must have exactly one
 * baseline; baseline records without a model response are ignored.
 */
export function pairResponses(
  model: readonly ResponseRecord[],
  baseline: readonly ResponseRecord[],
  files: { model: string; baseline: string },
): ResponsePair[] {
  const byId = model.every((r) => r.id !== undefined) && baseline.every((r) => r.id !== undefined);
  const keyOf = (r: ResponseRecord): string => (byId ? r.id! : r.prompt);
  const what = byId ? "id" : "prompt";
  const describe = (key: string): string =>
    `${what} ${JSON.stringify(key.length > 60 ? `${key.slice(0, 57)}...` : key)}`;
  const index = (records: readonly ResponseRecord[], file: string): Map<string, ResponseRecord> => {
    const map = new Map<string, ResponseRecord>();
    records.forEach((r, i) => {
      const key = keyOf(r);
      if (map.has(key)) throw new DnoError(`${file}: record ${i}: a second response for ${describe(key)}`);
      map.set(key, r);
    });
    return map;
  };
  index(model, files.model);
  const baselines = index(baseline, files.baseline);
  return model.map((r, i) => {
    const b = baselines.get(keyOf(r));
    if (!b)
      throw new DnoError(
        `${files.model}: record ${i}: no baseline response in ${files.baseline} for ${describe(keyOf(r))}`,
      );
    if (byId && b.prompt !== r.prompt)
      throw new DnoError(
        `${files.model}: record ${i}: id ${JSON.stringify(r.id)} has a different prompt in ${files.baseline}`,
      );
    const pair: ResponsePair = { prompt: r.prompt, model: r.response, baseline: b.response };
    if (r.id !== undefined) pair.id = r.id;
    return pair;
  });
}
