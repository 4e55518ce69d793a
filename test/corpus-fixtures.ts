/**
 * Valid fixtures for the bad-input corpus, built once per process: every surface a user hands dno
 * (a run config and its prompt files, generate / judge / logprobs inputs, a game, a model directory
 * with its tokenizer, a finished run directory). Each corpus case damages a fresh copy.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initPolicy, savePolicy } from "../src/pipeline/policy.js";
import { runTiny, tinyRunInputs } from "./tiny-run.js";

const ORACLE = fileURLToPath(new URL("../src/demo/oracle.js", import.meta.url));

/** The tiny model's context (max_position_embeddings). */
export const CONTEXT = 32;

export type FixtureKind = "inputs" | "finished";

let templates: Promise<Record<FixtureKind, string>> | undefined;

function build(): Promise<Record<FixtureKind, string>> {
  templates ??= (async () => {
    const inputs = tinyRunInputs();
    const policy = initPolicy(
      {
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        max_position_embeddings: CONTEXT,
        rope_theta: 10000,
        tie_word_embeddings: true,
      },
      11,
    );
    savePolicy(policy, join(inputs, "model"));
    writeFileSync(
      join(inputs, "gen.jsonl"),
      '{"id": "a", "prompt": "rev ab="}\n{"id": "b", "prompt": "rev cd="}\n',
    );
    writeFileSync(
      join(inputs, "seqs.json"),
      JSON.stringify({
        sequences: [
          [256, 97, 98],
          [256, 99],
        ],
      }),
    );
    writeFileSync(join(inputs, "judge.yaml"), `kind: programmatic\nmodule: ${JSON.stringify(ORACLE)}\n`);
    writeFileSync(
      join(inputs, "judge.jsonl"),
      [
        { id: "a", prompt: "rev ab=", candidates: ["ba", "ab"] },
        { id: "b", prompt: "rev cd=", candidates: ["dc", "cd"] },
      ]
        .map((l) => JSON.stringify(l))
        .join("\n"),
    );
    writeFileSync(join(inputs, "responses.jsonl"), '{"id": "a", "prompt": "rev ab=", "response": "ba"}\n');
    writeFileSync(
      join(inputs, "game.json"),
      JSON.stringify({
        name: "rps",
        prompts: [
          {
            id: "rps",
            responses: ["rock", "paper", "scissors"],
            preference: [
              [0.5, 0, 1],
              [1, 0.5, 0],
              [0, 1, 0.5],
            ],
            initial: [0.6, 0.3, 0.1],
          },
        ],
      }),
    );
    const finished = mkdtempSync(join(tmpdir(), "dno-corpus-finished-"));
    cpSync(inputs, finished, { recursive: true });
    await runTiny(finished);
    return { inputs, finished };
  })();
  return templates;
}

/** A fresh copy of a valid fixture folder (dno.yaml with run_dir: run; `finished`: run/ is done). */
export async function freshFixture(kind: FixtureKind): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "dno-corpus-"));
  cpSync((await build())[kind], dir, { recursive: true });
  return dir;
}

// --- damage helpers ---

export function edit(file: string, f: (text: string) => string): void {
  writeFileSync(file, f(readFileSync(file, "utf8")));
}

export interface SafetensorsParts {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | unknown>;
  data: Buffer;
}

export function readSafetensorsParts(file: string): SafetensorsParts {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}

export function writeSafetensorsParts(file: string, { header, data }: SafetensorsParts): void {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
}

export type TensorInfo = { dtype: string; shape: number[]; data_offsets: [number, number] };

/** The tensors of a header in data order. */
export function tensorsInOrder(header: SafetensorsParts["header"]): [string, TensorInfo][] {
  return (Object.entries(header).filter(([k]) => k !== "__metadata__") as [string, TensorInfo][]).sort(
    (a, b) => a[1].data_offsets[0] - b[1].data_offsets[0],
  );
}
