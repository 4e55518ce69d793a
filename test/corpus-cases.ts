/**
 * The bad-input corpus: each case damages a fresh copy of a valid fixture (corpus-fixtures.ts) and
 * names the command to run, the exit code and the first line of the error it must give.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CONTEXT,
  edit,
  type FixtureKind,
  readSafetensorsParts,
  tensorsInOrder,
  writeSafetensorsParts,
} from "./corpus-fixtures.js";

export type Surface =
  | "config"
  | "jsonl"
  | "game"
  | "model"
  | "tokenizer"
  | "gguf"
  | "run-dir"
  | "oversized"
  | "flags"
  | "file-system";

export interface BadInputCase {
  surface: Surface;
  name: string;
  fixture: FixtureKind;
  /** Damages the fixture in `dir`; returns the command's arguments. */
  setup(dir: string): string[];
  /** The first line of stderr, after `dno: error: `. */
  error: RegExp;
  /** Default 1. */
  code?: number;
}

const cases: BadInputCase[] = [];
const add = (
  surface: Surface,
  fixture: FixtureKind,
  name: string,
  error: RegExp,
  setup: (dir: string) => string[],
) => cases.push({ surface, fixture, name, error, setup });

// --- configs: `dno run --config dno.yaml` with one thing wrong ---
const run = (dir: string) => ["run", "--config", join(dir, "dno.yaml")];
const withConfig = (name: string, error: RegExp, f: (yaml: string) => string) =>
  add("config", "inputs", name, error, (dir) => {
    edit(join(dir, "dno.yaml"), f);
    return run(dir);
  });
const setting = (line: string) => (yaml: string) => `${yaml}${line}\n`;
const replace = (from: string, to: string) => (yaml: string) => {
  if (!yaml.includes(from)) throw new Error(`fixture config lacks ${from}`);
  return yaml.replace(from, to);
};
withConfig("invalid YAML", /dno\.yaml: invalid YAML/, () => "iterations: [1\nseed: 2\n");
withConfig("a list, not a mapping", /dno\.yaml: .*expected object/i, () => "- a\n- b\n");
withConfig("an empty file", /dno\.yaml: .*expected object/i, () => "");
withConfig("an unknown key", /dno\.yaml: .*iteration/, setting("iteration: 2"));
withConfig("no oracle", /dno\.yaml: oracle: /, (y) => y.replace(/^oracle: .*\n/m, ""));
withConfig("iterations not a number", /dno\.yaml: iterations: /, replace("iterations: 1", "iterations: two"));
withConfig("zero iterations", /dno\.yaml: iterations: /, replace("iterations: 1", "iterations: 0"));
withConfig(
  "a million iterations",
  /dno\.yaml: iterations: .*1000/,
  replace("iterations: 1", "iterations: 1000000"),
);
withConfig(
  "max_new_tokens: 1000000",
  /dno\.yaml: sampling\.max_new_tokens: /,
  replace("max_new_tokens: 8", "max_new_tokens: 1000000"),
);
withConfig(
  "max_new_tokens fills the context",
  /dno\.yaml: sampling\.max_new_tokens: 32 leaves no room for a prompt/,
  replace("max_new_tokens: 8", "max_new_tokens: 32"),
);
withConfig(
  "one sample per prompt under the win-rate rule",
  /dno\.yaml: sampling\.samples_per_prompt: the win-rate rule .* at least 2/,
  replace("samples_per_prompt: 2", "samples_per_prompt: 1"),
);
withConfig(
  "a negative temperature",
  /dno\.yaml: sampling\.temperature: /,
  replace("samples_per_prompt: 2,", "samples_per_prompt: 2, temperature: -1,"),
);
withConfig(
  "top_p 0",
  /dno\.yaml: sampling\.top_p: /,
  replace("samples_per_prompt: 2,", "samples_per_prompt: 2, top_p: 0,"),
);
withConfig(
  "both model.path and from_scratch",
  /dno\.yaml: model: give exactly one/,
  replace("model: { from_scratch:", "model: { path: model, from_scratch:"),
);
withConfig(
  "hidden_size not a multiple of the heads",
  /dno\.yaml: model\.from_scratch\.hidden_size: 15 is not a multiple of num_attention_heads 2/,
  replace("hidden_size: 16", "hidden_size: 15"),
);
const judgeOracle = (url: string) => (yaml: string) =>
  yaml.replace(/^oracle: .*$/m, `oracle: { kind: llm-judge, baseUrl: ${JSON.stringify(url)}, model: m }`);
withConfig(
  "a file:// judge URL",
  /dno\.yaml: oracle\.baseUrl: expected an http:\/\/ or https:\/\/ URL/,
  judgeOracle("file:///etc/passwd"),
);
withConfig(
  "a javascript: judge URL",
  /dno\.yaml: oracle\.baseUrl: expected an http/,
  judgeOracle("javascript:alert(1)"),
);
withConfig("an ftp reward model", /dno\.yaml: oracle\.url: expected an http/, (y) =>
  y.replace(/^oracle: .*$/m, "oracle: { kind: reward-model, url: ftp://host/score }"),
);
withConfig(
  "inpo without tau",
  /dno\.yaml: objective\.tau: inpo and nash-md need tau/,
  setting("objective: { name: inpo }"),
);
withConfig(
  "lr_decay 2",
  /dno\.yaml: train\.lr_decay: /,
  replace("train: { lr: 0.001,", "train: { lr: 0.001, lr_decay: 2,"),
);
withConfig(
  "negative checkpoint_seconds",
  /dno\.yaml: train\.checkpoint_seconds: /,
  replace("checkpoint_seconds: 0 }\neval", "checkpoint_seconds: -1 }\neval"),
);
withConfig(
  "a replay fraction above 1",
  /dno\.yaml: pairs\.replay\[0\]: /,
  replace("pairs: { margin: 0.1,", "pairs: { replay: [1.5], margin: 0.1,"),
);
withConfig("a negative seed", /dno\.yaml: seed: /, replace("seed: 3", "seed: -1"));
withConfig(
  "batch_size 0",
  /dno\.yaml: train\.batch_size: /,
  replace("train: { lr: 0.001, batch_size: 4", "train: { lr: 0.001, batch_size: 0"),
);
withConfig(
  "prompts_per_iteration above the prompts",
  /prompts\.jsonl: 8 prompts cannot fill 1 partitions of 100/,
  replace("data: { prompts: prompts.jsonl,", "data: { prompts_per_iteration: 100, prompts: prompts.jsonl,"),
);
withConfig(
  "a missing prompts file",
  /nope\.jsonl: cannot read: .*no such file/i,
  replace("prompts: prompts.jsonl", "prompts: nope.jsonl"),
);
withConfig("a missing model directory", /no-model\/tokenizer\.json: cannot read/, (y) =>
  y.replace(/model: \{ from_scratch: .*\}\n/, "model: { path: no-model }\n"),
);
withConfig("a missing oracle module", /gone\.mjs \(oracle\.module\): not found/, (y) =>
  y.replace(/^oracle: .*$/m, "oracle: { kind: programmatic, module: gone.mjs }"),
);
add("config", "inputs", "prompts file is a directory", /prompts\.jsonl: cannot read: .*directory/i, (dir) => {
  rmSync(join(dir, "prompts.jsonl"));
  mkdirSync(join(dir, "prompts.jsonl"));
  return run(dir);
});
add("config", "inputs", "the config file does not exist", /missing\.yaml: cannot read/, (dir) => [
  "run",
  "--config",
  join(dir, "missing.yaml"),
]);
add("config", "inputs", "the config is a directory", /conf\.d: cannot read: .*directory/i, (dir) => {
  mkdirSync(join(dir, "conf.d"));
  return ["run", "--config", join(dir, "conf.d")];
});

// --- JSONL: the run's prompt files, and the inputs of generate, judge, eval ---
const withFile = (
  surface: Surface,
  file: string,
  name: string,
  error: RegExp,
  content: string | Buffer,
  args: (dir: string) => string[],
) =>
  add(surface, "inputs", `${file}: ${name}`, error, (dir) => {
    writeFileSync(join(dir, file), content);
    return args(dir);
  });
const row = (id: string, prompt: string, gold = "x") => JSON.stringify({ id, prompt, gold });
const eight = (k: number) =>
  Array.from({ length: k }, (_, i) => row(`q${i}`, `rev ${String.fromCharCode(97 + i)}zz=`)).join("\n");
withFile(
  "jsonl",
  "prompts.jsonl",
  "invalid JSON on line 2",
  /prompts\.jsonl:2: invalid JSON/,
  `${row("a", "rev a=")}\n{"id": "b", "prompt":\n`,
  run,
);
withFile(
  "jsonl",
  "prompts.jsonl",
  "an empty file",
  /prompts\.jsonl: no prompts \(the file holds no records\)/,
  "",
  run,
);
withFile("jsonl", "prompts.jsonl", "blank lines only", /prompts\.jsonl: no prompts/, "\n\n  \n", run);
withFile(
  "jsonl",
  "prompts.jsonl",
  "a duplicate id",
  /prompts\.jsonl:3: duplicate id "q0" \(first on line 1\)/,
  `${eight(2)}\n${row("q0", "rev other=")}\n`,
  run,
);
withFile(
  "jsonl",
  "prompts.jsonl",
  "invalid UTF-8",
  /prompts\.jsonl:2: invalid UTF-8 \(byte \d+\)/,
  Buffer.concat([
    Buffer.from(`${row("a", "rev a=")}\n{"id": "b", "prompt": "`),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('"}\n'),
  ]),
  run,
);
withFile("jsonl", "prompts.jsonl", "no prompt field", /prompts\.jsonl:1: prompt: /, '{"id": "a"}\n', run);
withFile(
  "jsonl",
  "prompts.jsonl",
  "a numeric prompt",
  /prompts\.jsonl:1: prompt: /,
  '{"id": "a", "prompt": 5}\n',
  run,
);
withFile(
  "jsonl",
  "prompts.jsonl",
  "an unknown field",
  /prompts\.jsonl:1: .*promtp/,
  '{"id": "a", "prompt": "x", "promtp": "y"}\n',
  run,
);
withFile(
  "jsonl",
  "prompts.jsonl",
  "an empty id",
  /prompts\.jsonl:1: id: /,
  '{"id": "", "prompt": "x"}\n',
  run,
);
withFile(
  "jsonl",
  "prompts.jsonl",
  "a truncated last line",
  /prompts\.jsonl:9: invalid JSON/,
  `${eight(8)}\n{"id": "q8", "pro`,
  run,
);
withFile("jsonl", "prompts.jsonl", "an array line", /prompts\.jsonl:1: .*expected object/i, "[1, 2]\n", run);
add(
  "jsonl",
  "inputs",
  "eval.jsonl shares a prompt with prompts.jsonl",
  /eval\.jsonl: prompt of id "e0" also appears in .*prompts\.jsonl/,
  (dir) => {
    const first = JSON.parse(readFileSync(join(dir, "prompts.jsonl"), "utf8").split("\n")[0]!);
    edit(join(dir, "eval.jsonl"), (t) =>
      t.replace(/"prompt":"[^"]*"/, `"prompt":${JSON.stringify(first.prompt)}`),
    );
    return run(dir);
  },
);
withFile(
  "jsonl",
  "sft.jsonl",
  "a row without gold",
  /sft\.jsonl:1: SFT needs a "gold" answer/,
  '{"id": "s", "prompt": "rev q="}\n',
  run,
);
const generate = (dir: string) => [
  "generate",
  "--model",
  join(dir, "model"),
  "--input",
  join(dir, "gen.jsonl"),
  "--output",
  join(dir, "out.jsonl"),
  "--max-new-tokens",
  "4",
];
withFile("jsonl", "gen.jsonl", "invalid JSON", /gen\.jsonl:1: invalid JSON/, "{nope}\n", generate);
withFile("jsonl", "gen.jsonl", "an empty file", /gen\.jsonl: no prompts/, "", generate);
withFile(
  "jsonl",
  "gen.jsonl",
  "a duplicate id",
  /gen\.jsonl:2: duplicate id "a" \(first on line 1\)/,
  '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
  generate,
);
withFile(
  "jsonl",
  "gen.jsonl",
  'ids 1 and "1"',
  /gen\.jsonl:2: duplicate id "1"/,
  '{"id": 1, "prompt": "x"}\n{"id": "1", "prompt": "y"}\n',
  generate,
);
withFile(
  "jsonl",
  "gen.jsonl",
  "invalid UTF-8",
  /gen\.jsonl:1: invalid UTF-8/,
  Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d, 0x0a]),
  generate,
);
withFile(
  "jsonl",
  "gen.jsonl",
  "prompt and messages",
  /gen\.jsonl:1: .*exactly one of "prompt"/,
  '{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}\n',
  generate,
);
withFile(
  "jsonl",
  "gen.jsonl",
  "messages without a chat template",
  /gen\.jsonl:1: "messages" needs a chat template/,
  '{"messages": [{"role": "user", "content": "y"}]}\n',
  generate,
);
const judge = (dir: string) => [
  "judge",
  "--config",
  join(dir, "judge.yaml"),
  "--input",
  join(dir, "judge.jsonl"),
  "--output",
  join(dir, "judged.jsonl"),
];
withFile(
  "jsonl",
  "judge.jsonl",
  "a duplicate id",
  /judge\.jsonl:2: duplicate id "a"/,
  '{"id": "a", "prompt": "p", "candidates": ["x"]}\n{"id": "a", "prompt": "q", "candidates": ["y"]}\n',
  judge,
);
withFile("jsonl", "judge.jsonl", "an empty file", /judge\.jsonl: no items/, "", judge);
withFile(
  "jsonl",
  "judge.jsonl",
  "gold_index out of range",
  /judge\.jsonl:1: gold_index/,
  '{"id": "a", "prompt": "p", "candidates": ["x"], "gold_index": 3}\n',
  judge,
);
withFile(
  "jsonl",
  "judge.jsonl",
  "no candidates",
  /judge\.jsonl:1: candidates: /,
  '{"id": "a", "prompt": "p", "candidates": []}\n',
  judge,
);
const evalResponses = (dir: string) => [
  "eval",
  "--responses",
  join(dir, "responses.jsonl"),
  "--baseline",
  join(dir, "responses.jsonl"),
  "--oracle",
  join(dir, "judge.yaml"),
];
withFile("jsonl", "responses.jsonl", "an empty file", /responses\.jsonl: no responses/, "", evalResponses);
withFile(
  "jsonl",
  "responses.jsonl",
  "a duplicate id",
  /responses\.jsonl:2: duplicate id "a"/,
  '{"id": "a", "prompt": "p", "response": "x"}\n{"id": "a", "prompt": "p", "response": "y"}\n',
  evalResponses,
);
const logprobs = (dir: string) => [
  "logprobs",
  "--model",
  join(dir, "model"),
  "--input",
  join(dir, "seqs.json"),
  "--out",
  join(dir, "lp.json"),
];
withFile("jsonl", "seqs.json", "not JSON", /seqs\.json: invalid JSON/, "{sequences", logprobs);
withFile(
  "jsonl",
  "seqs.json",
  "a token outside the vocabulary",
  /seqs\.json: sequences\[0\]\[1\]: token 999 is outside the model's vocabulary \[0, 259\)/,
  '{"sequences": [[1, 999]]}',
  logprobs,
);
withFile(
  "jsonl",
  "seqs.json",
  "an empty sequence",
  /seqs\.json: sequences\[0\]: /,
  '{"sequences": [[]]}',
  logprobs,
);

const train = (dir: string) => [
  "train",
  "--model",
  join(dir, "model"),
  "--pairs",
  join(dir, "pairs.jsonl"),
  "--out",
  join(dir, "trained"),
];
const pair = JSON.stringify({ prompt: "rev ab=", chosen: "ba", rejected: "ab" });
withFile(
  "jsonl",
  "pairs.jsonl",
  "an empty preference file",
  /pairs\.jsonl: no preference pairs \(the file holds no records\)/,
  "",
  train,
);
withFile(
  "jsonl",
  "pairs.jsonl",
  "a bad row after a blank line",
  /pairs\.jsonl:3: .*rejected/,
  `${pair}\n\n{"prompt": "x", "chosen": "y"}\n`,
  train,
);
withFile(
  "jsonl",
  "pairs.jsonl",
  "invalid UTF-8 in a preference file",
  /pairs\.jsonl:2: invalid UTF-8/,
  Buffer.concat([Buffer.from(`${pair}\n`), Buffer.from([0xe2, 0x82])]),
  train,
);
withFile(
  "flags",
  "pairs.jsonl",
  "dno train --batch-size 0",
  /--batch-size must be an integer in \[1, 1048576\]/,
  `${pair}\n`,
  (dir) => [...train(dir), "--batch-size", "0"],
);

// --- games: `dno game --game game.json` ---
const game = (dir: string) => ["game", "--game", join(dir, "game.json"), "--json"];
const withGame = (name: string, error: RegExp, f: (g: { prompts: Record<string, unknown>[] }) => void) =>
  add("game", "inputs", name, error, (dir) => {
    const g = JSON.parse(readFileSync(join(dir, "game.json"), "utf8"));
    f(g);
    writeFileSync(join(dir, "game.json"), JSON.stringify(g));
    return game(dir);
  });
withFile("game", "game.json", "invalid JSON", /game\.json: invalid JSON/, "{", game);
withGame("a non-square preference", /game\.json: prompts\[0\]\.preference/, (g) => {
  g.prompts[0]!.preference = [[0.5, 0.5]];
});
withGame(
  "P + P^T != 1",
  /game\.json: prompts\[0\]\.preference\[0\]\[1\]: P\[0\]\[1\] \+ P\[1\]\[0\] = 1\.2/,
  (g) => {
    (g.prompts[0]!.preference as number[][])[0]![1] = 0.2;
  },
);
withGame("initial not summing to 1", /game\.json: prompts\[0\]\.initial/, (g) => {
  g.prompts[0]!.initial = [0.5, 0.5, 0.5];
});
withGame("a negative probability", /game\.json: prompts\[0\]\.preference/, (g) => {
  (g.prompts[0]!.preference as number[][])[0]![1] = -0.1;
  (g.prompts[0]!.preference as number[][])[1]![0] = 1.1;
});
withGame("duplicate prompt ids", /game\.json: prompts\[1\]\.id: duplicate prompt id "rps"/, (g) => {
  g.prompts.push(structuredClone(g.prompts[0]!));
});
withGame("no prompts", /game\.json: prompts: /, (g) => {
  g.prompts.length = 0;
});
withGame("duplicate responses", /game\.json: prompts\[0\]\.responses/, (g) => {
  g.prompts[0]!.responses = ["rock", "rock", "scissors"];
});

// --- flags: every count and length bounded ---
const flag = (name: string, error: RegExp, args: (dir: string) => string[]) =>
  add("flags", "inputs", name, error, args);
flag("dno game --iterations 0", /--iterations must be an integer in \[1, 100000\], got "0"/, (dir) => [
  ...game(dir),
  "--iterations",
  "0",
]);
flag("dno game --iterations 1e9", /--iterations must be an integer in \[1, 100000\]/, (dir) => [
  ...game(dir),
  "--iterations",
  "1e9",
]);
flag("dno game --lr -1", /--lr must be a number in \(0, 10\]/, (dir) => [
  ...game(dir),
  "--mode",
  "prct",
  "--lr",
  "-1",
]);
flag("dno generate --samples 1e9", /--samples must be an integer in \[1, 4096\]/, (dir) => [
  ...generate(dir),
  "--samples",
  "1000000000",
]);
flag("dno generate --top-p 0", /--top-p must be a number in \(0, 1\]/, (dir) => [
  ...generate(dir),
  "--top-p",
  "0",
]);
flag("dno generate --seed -1", /--seed must be an integer in \[0, 4294967295\]/, (dir) => [
  ...generate(dir),
  "--seed",
  "-1",
]);
flag("dno generate --truncate right", /option '--truncate <side>' argument 'right' is invalid/, (dir) => [
  ...generate(dir),
  "--truncate",
  "right",
]);
flag("dno judge --max-failed 2", /--max-failed must be a number in \[0, 1\]/, (dir) => [
  ...judge(dir),
  "--max-failed",
  "2",
]);
flag("dno judge --concurrency 0", /--concurrency must be an integer in \[1, 1024\]/, (dir) => [
  ...judge(dir),
  "--concurrency",
  "0",
]);
flag("dno eval --bootstrap 0", /--bootstrap must be an integer in \[1, 1000000\]/, (dir) => [
  ...evalResponses(dir),
  "--bootstrap",
  "0",
]);
flag("an unknown command", /unknown command 'rnu'/, () => ["rnu"]);

// --- model directories: `dno generate --model model` ---
const model = (f: string) => (dir: string) => join(dir, "model", f);
const withModel = (name: string, error: RegExp, damage: (dir: string) => void, args = generate) =>
  add("model", "inputs", name, error, (dir) => {
    damage(dir);
    return args(dir);
  });
const weights = model("model.safetensors");
const withHeader = (
  name: string,
  error: RegExp,
  f: (parts: ReturnType<typeof readSafetensorsParts>) => void,
) =>
  withModel(name, error, (dir) => {
    const parts = readSafetensorsParts(weights(dir));
    f(parts);
    writeSafetensorsParts(weights(dir), parts);
  });
withModel("no config.json", /model\/config\.json: cannot read/, (dir) => rmSync(model("config.json")(dir)));
withModel("config.json not JSON", /model\/config\.json: invalid JSON/, (dir) =>
  writeFileSync(model("config.json")(dir), "{,}"),
);
withModel("vocab_size 0", /config\.json: vocab_size/, (dir) =>
  edit(model("config.json")(dir), (t) => t.replace(/"vocab_size": \d+/, '"vocab_size": 0')),
);
withModel("no weights", /model: has neither model\.safetensors nor model\.safetensors\.index\.json/, (dir) =>
  rmSync(weights(dir)),
);
withModel(
  "truncated weights",
  /model\.safetensors: tensor .* runs past the end of the \d+-byte file \(truncated\)/,
  (dir) => {
    const size = readFileSync(weights(dir)).length;
    truncateSync(weights(dir), size - 100);
  },
);
withModel("a 7-byte file", /model\.safetensors: 7 bytes, too short for a safetensors header/, (dir) =>
  writeFileSync(weights(dir), "1234567"),
);
withModel(
  "a huge header length",
  /model\.safetensors: header length \d+ \(bytes 0-7\) runs past the end/,
  (dir) => {
    const bytes = readFileSync(weights(dir));
    bytes.writeBigUInt64LE(1n << 40n, 0);
    writeFileSync(weights(dir), bytes);
  },
);
withModel(
  "a header that is not JSON",
  /model\.safetensors: header at bytes 8-\d+ is not valid JSON/,
  (dir) => {
    const bytes = readFileSync(weights(dir));
    bytes[8] = 0x5b; // '[' where '{' was, then garbage
    bytes[9] = 0x7d;
    writeFileSync(weights(dir), bytes);
  },
);
withHeader(
  "overlapping offsets (one tensor on another's bytes, a hole left)",
  /model\.safetensors: tensor .* overlaps tensor /,
  ({ header }) => {
    const [[, a], [, b]] = tensorsInOrder(header);
    const size = b.data_offsets[1] - b.data_offsets[0];
    if (size > a.data_offsets[1] - a.data_offsets[0])
      throw new Error("fixture: second tensor larger than first");
    b.data_offsets = [a.data_offsets[0], a.data_offsets[0] + size];
  },
);
withHeader(
  "a hole between tensors",
  /model\.safetensors: bytes \d+-\d+ before tensor .* belong to no tensor \(a hole in the data\)/,
  (parts) => {
    const list = tensorsInOrder(parts.header);
    const [, last] = list[list.length - 1]!;
    last.data_offsets = [last.data_offsets[0] + 4, last.data_offsets[1] + 4];
    parts.data = Buffer.concat([parts.data, Buffer.alloc(4)]);
  },
);
withHeader(
  "trailing bytes after the last tensor",
  /model\.safetensors: bytes \d+-\d+ at the end belong to no tensor \(trailing data\)/,
  (parts) => {
    parts.data = Buffer.concat([parts.data, Buffer.alloc(16)]);
  },
);
withHeader("an unsupported dtype", /dtype "I8" is not supported/, ({ header }) => {
  tensorsInOrder(header)[0]![1].dtype = "I8";
});
withHeader(
  "data_offsets that disagree with the shape",
  /data_offsets \[\d+, \d+\] hold \d+ bytes, but F32 \[\d+(,\d+)*\] needs \d+/,
  ({ header }) => {
    const [, t] = tensorsInOrder(header)[0]!;
    t.shape = [t.shape[0]! + 1, ...t.shape.slice(1)];
  },
);
withHeader(
  "__metadata__ not strings",
  /__metadata__\.format \(header at byte 8\) is not a string/,
  ({ header }) => {
    header.__metadata__ = { format: 5 };
  },
);
const poke = (value: number) => (dir: string) => {
  const parts = readSafetensorsParts(weights(dir));
  const [, t] = tensorsInOrder(parts.header)[1]!;
  parts.data.writeFloatLE(value, t.data_offsets[0] + 8);
  writeSafetensorsParts(weights(dir), parts);
};
withModel(
  "a NaN weight",
  /model\.safetensors: tensor ".*": element 2 is NaN; weights must be finite/,
  poke(Number.NaN),
);
withModel(
  "an infinite weight",
  /model\.safetensors: tensor ".*": element 2 is -Infinity; weights must be finite/,
  poke(Number.NEGATIVE_INFINITY),
);
withModel(
  "NaN weights under dno logprobs",
  /element 2 is NaN; weights must be finite/,
  poke(Number.NaN),
  logprobs,
);
withModel(
  "a tensor the config does not have",
  /model\.safetensors: tensor "model\.layers\.1\.mlp\.up_proj\.weight" is not in this architecture/,
  (dir) => {
    const parts = readSafetensorsParts(weights(dir));
    const [name, t] = tensorsInOrder(parts.header).find(([n]) => n.includes("mlp.up_proj"))!;
    const bytes = parts.data.subarray(t.data_offsets[0], t.data_offsets[1]);
    parts.header[name.replace("layers.0", "layers.1")] = {
      ...t,
      data_offsets: [parts.data.length, parts.data.length + bytes.length],
    };
    parts.data = Buffer.concat([parts.data, bytes]);
    writeSafetensorsParts(weights(dir), parts);
  },
);
withModel(
  "shape against config.json",
  /model\.safetensors: tensor model\.norm\.weight has shape \[8,2\], config\.json implies \[16\]/,
  (dir) => {
    const parts = readSafetensorsParts(weights(dir));
    (parts.header["model.norm.weight"] as { shape: number[] }).shape = [8, 2];
    writeSafetensorsParts(weights(dir), parts);
  },
);
withModel(
  "an index naming a missing shard",
  /model-00002-of-00002\.safetensors: cannot open \(ENOENT\)/,
  (dir) => {
    rmSync(weights(dir));
    writeFileSync(
      model("model.safetensors.index.json")(dir),
      JSON.stringify({ weight_map: { "model.norm.weight": "model-00002-of-00002.safetensors" } }),
    );
  },
);
withModel(
  "an index without weight_map",
  /model\.safetensors\.index\.json: weight_map: expected an object/,
  (dir) => {
    rmSync(weights(dir));
    writeFileSync(model("model.safetensors.index.json")(dir), "{}");
  },
);

// --- tokenizers ---
const tokenizerFile = model("tokenizer.json");
withModel("tokenizer.json not JSON", /model\/tokenizer\.json: invalid JSON/, (dir) =>
  writeFileSync(tokenizerFile(dir), "{"),
);
cases[cases.length - 1]!.surface = "tokenizer";
const withTokenizer = (name: string, error: RegExp, damage: (dir: string) => void) => {
  withModel(name, error, damage);
  cases[cases.length - 1]!.surface = "tokenizer";
};
withTokenizer("no tokenizer.json", /model\/tokenizer\.json: cannot read/, (dir) =>
  rmSync(tokenizerFile(dir)),
);
withTokenizer("tokenizer.json with invalid UTF-8", /model\/tokenizer\.json:1: invalid UTF-8/, (dir) =>
  writeFileSync(tokenizerFile(dir), Buffer.from([0x7b, 0xfe, 0x7d])),
);
withTokenizer("tokenizer.json is null", /model\/tokenizer\.json: cannot build the tokenizer/, (dir) =>
  writeFileSync(tokenizerFile(dir), "null"),
);
withTokenizer("tokenizer.json without a model", /model\/tokenizer\.json: cannot build the tokenizer/, (dir) =>
  writeFileSync(tokenizerFile(dir), "{}"),
);
withTokenizer(
  "an eos_token not in the vocabulary",
  /model\/tokenizer_config\.json: eos_token: "<nope>" is not in the vocabulary/,
  (dir) =>
    edit(model("tokenizer_config.json")(dir), (t) =>
      JSON.stringify({ ...JSON.parse(t), eos_token: "<nope>" }),
    ),
);
withTokenizer(
  "generation_config eos_token_id out of range",
  /model\/generation_config\.json: eos_token_id 99999 is not a token id \(0\.\.258\)/,
  (dir) => writeFileSync(model("generation_config.json")(dir), '{"eos_token_id": 99999}'),
);
withTokenizer(
  "a chat template that does not parse",
  /tokenizer_config\.json: chat_template: Unexpected token/,
  (dir) => writeFileSync(model("chat_template.jinja")(dir), "{% if %}"),
);

// --- GGUF export: `dno export` ---
const exportGguf = (out: (dir: string) => string) => (dir: string) => [
  "export",
  "--model",
  join(dir, "model"),
  "--output",
  out(dir),
];
add(
  "gguf",
  "inputs",
  "--output onto a directory",
  /out\.gguf: cannot write: is a directory, a file was expected \(rename, EISDIR\)/,
  (dir) => {
    mkdirSync(join(dir, "out.gguf"));
    return exportGguf((d) => join(d, "out.gguf"))(dir);
  },
);
add(
  "gguf",
  "inputs",
  "--output in a missing folder",
  /missing\/out\.gguf: cannot write: no such file or directory \(open, ENOENT\)/,
  exportGguf((d) => join(d, "missing", "out.gguf")),
);
add("gguf", "inputs", "a model with NaN weights", /element 2 is NaN; weights must be finite/, (dir) => {
  poke(Number.NaN)(dir);
  return exportGguf((d) => join(d, "out.gguf"))(dir);
});
add("gguf", "inputs", "a model with overlapping tensors", /overlaps tensor/, (dir) => {
  const parts = readSafetensorsParts(weights(dir));
  const [[, a], [, b]] = tensorsInOrder(parts.header);
  b.data_offsets = [a.data_offsets[0], a.data_offsets[0] + (b.data_offsets[1] - b.data_offsets[0])];
  writeSafetensorsParts(weights(dir), parts);
  return exportGguf((d) => join(d, "out.gguf"))(dir);
});

// --- run directories with each kind of damage (a finished run) ---
const runDir = (dir: string) => join(dir, "run");
const damaged = (
  name: string,
  error: RegExp,
  damage: (run: string) => void,
  command: "run" | "status" | "report" = "run",
) =>
  add("run-dir", "finished", `${name} (dno ${command})`, error, (dir) => {
    damage(runDir(dir));
    return command === "run" ? run(dir) : [command, runDir(dir)];
  });
const holdsResults =
  /run: holds results \(data, checkpoints, iterations, metrics\.jsonl\) but no usable run state/;
damaged("state.sqlite deleted", holdsResults, (r) => rmSync(join(r, "state.sqlite")));
damaged("state.sqlite emptied", holdsResults, (r) => truncateSync(join(r, "state.sqlite"), 0));
damaged("state.sqlite emptied", holdsResults, (r) => truncateSync(join(r, "state.sqlite"), 0), "status");
damaged("state.sqlite overwritten", /state\.sqlite: cannot open the run state/, (r) =>
  writeFileSync(join(r, "state.sqlite"), "garbage ".repeat(600)),
);
damaged(
  "state.sqlite overwritten",
  /state\.sqlite: cannot open the run state/,
  (r) => writeFileSync(join(r, "state.sqlite"), "garbage ".repeat(600)),
  "report",
);
const cut = (file: string) => (r: string) => truncateSync(join(r, file), 20);
damaged(
  "pairs.jsonl truncated",
  /iterations\/1\/pairs\.jsonl: changed since stage "1\/pairs" wrote it \(SHA-256 mismatch\)/,
  cut("iterations/1/pairs.jsonl"),
);
damaged(
  "pairs.jsonl truncated",
  /iterations\/1\/pairs\.jsonl: changed since stage "1\/pairs" wrote it/,
  cut("iterations/1/pairs.jsonl"),
  "status",
);
damaged(
  "pairs.jsonl truncated",
  /iterations\/1\/pairs\.jsonl: changed since stage "1\/pairs" wrote it/,
  cut("iterations/1/pairs.jsonl"),
  "report",
);
damaged(
  "a checkpoint's weights changed",
  /checkpoints\/pi_2\/model\.safetensors: changed since stage "1\/train" wrote it/,
  (r) => appendFileSync(join(r, "checkpoints/pi_2/model.safetensors"), Buffer.alloc(4)),
);
damaged(
  "samples.jsonl deleted",
  /iterations\/1\/samples\.jsonl: missing, but stage "1\/sample" wrote it/,
  (r) => rmSync(join(r, "iterations/1/samples.jsonl")),
);
damaged("the checkpoints folder deleted", /checkpoints\/init\/.*: missing, but stage "init" wrote it/, (r) =>
  rmSync(join(r, "checkpoints"), { recursive: true }),
);
damaged(
  "data/partitions.json edited",
  /data\/partitions\.json: changed since stage "prepare" wrote it/,
  (r) => edit(join(r, "data/partitions.json"), (t) => t.replace("rev", "REV")),
);
damaged(
  "eval.jsonl edited",
  /iterations\/0\/eval\.jsonl: changed since stage "eval\/0" wrote it/,
  (r) => edit(join(r, "iterations/0/eval.jsonl"), (t) => `${t}\n`),
  "status",
);
damaged("config.yaml edited", /run\/config\.yaml: changed since dno run wrote it/, (r) =>
  edit(join(r, "config.yaml"), (t) => t.replace("iterations: 1", "iterations: 9")),
);
damaged(
  "config.yaml deleted",
  /run\/config\.yaml: missing, but dno run wrote it/,
  (r) => rmSync(join(r, "config.yaml")),
  "status",
);
damaged(
  "the judgment cache overwritten",
  /oracle-cache\.sqlite: cannot read the judgment cache/,
  (r) => writeFileSync(join(r, "oracle-cache.sqlite"), "garbage ".repeat(600)),
  "report",
);
add(
  "run-dir",
  "finished",
  "an input edited after the run started",
  /prompts\.jsonl \(data\.prompts\): changed since the run started \(SHA-256 mismatch\)/,
  (dir) => {
    edit(join(dir, "prompts.jsonl"), (t) => `${t}\n`);
    return run(dir);
  },
);
add(
  "run-dir",
  "finished",
  "the config changed",
  /run: this run directory was started with a different config \(changed: seed\)/,
  (dir) => {
    edit(join(dir, "dno.yaml"), (t) => t.replace("seed: 3", "seed: 4"));
    return run(dir);
  },
);
add("run-dir", "inputs", "run_dir names a file", /runfile: run_dir names a file, not a directory/, (dir) => {
  writeFileSync(join(dir, "runfile"), "x");
  edit(join(dir, "dno.yaml"), (t) => t.replace("run_dir: run", "run_dir: runfile"));
  return run(dir);
});
add("run-dir", "inputs", "status of a folder that is no run", /: not a dno run directory/, (dir) => [
  "status",
  dir,
]);
add("run-dir", "inputs", "report of a missing folder", /nowhere: not a dno run directory/, (dir) => [
  "report",
  join(dir, "nowhere"),
]);

// --- oversized inputs ---
const hugePrompt = `rev ${"a".repeat(2_000_000)}=`;
add(
  "oversized",
  "inputs",
  "a 2 MB prompt in dno run",
  /prompts\.jsonl:9: the prompt is \d+ tokens; with sampling\.max_new_tokens 8 it needs \d+ positions, more than the model's context of 32/,
  (dir) => {
    appendFileSync(join(dir, "prompts.jsonl"), `${JSON.stringify({ id: "huge", prompt: hugePrompt })}\n`);
    return run(dir);
  },
);
add(
  "oversized",
  "inputs",
  "a 2 MB prompt in dno generate",
  /gen\.jsonl:2: the prompt is \d+ tokens; with --max-new-tokens 4 it needs \d+ positions, more than the model's context of 32/,
  (dir) => {
    writeFileSync(
      join(dir, "gen.jsonl"),
      `{"id": "a", "prompt": "x"}\n${JSON.stringify({ id: "b", prompt: hugePrompt })}\n`,
    );
    return generate(dir);
  },
);
add(
  "oversized",
  "inputs",
  "--max-new-tokens 1000000",
  /--max-new-tokens 1000000 leaves no room for a prompt in the model's context of 32 tokens/,
  (dir) => [...generate(dir), "--max-new-tokens", "1000000"],
);
add(
  "oversized",
  "inputs",
  "--max-new-tokens above the flag bound",
  /--max-new-tokens must be an integer in \[1, 1048576\]/,
  (dir) => [...generate(dir), "--max-new-tokens", "99999999"],
);
add(
  "oversized",
  "inputs",
  "a sequence longer than the context in dno logprobs",
  new RegExp(`seqs\\.json: sequences\\[0\\]: 40 tokens, more than the model's context of ${CONTEXT}`),
  (dir) => {
    writeFileSync(
      join(dir, "seqs.json"),
      JSON.stringify({ sequences: [Array.from({ length: 40 }, () => 97)] }),
    );
    return logprobs(dir);
  },
);
add(
  "oversized",
  "inputs",
  "a gold answer too long to train on",
  /sft\.jsonl:17: prompt and gold answer are \d+ tokens, more than the model's context of 32/,
  (dir) => {
    appendFileSync(
      join(dir, "sft.jsonl"),
      `${JSON.stringify({ id: "long", prompt: "rev x=", gold: "y".repeat(100) })}\n`,
    );
    return run(dir);
  },
);
add(
  "oversized",
  "inputs",
  "a 2 MB prompt in dno eval --model",
  /prompt "big": the prompt is \d+ tokens; with --max-new-tokens 4 it needs/,
  (dir) => {
    writeFileSync(join(dir, "gen.jsonl"), `${JSON.stringify({ id: "big", prompt: hugePrompt })}\n`);
    return [
      "eval",
      "--model",
      join(dir, "model"),
      "--baseline-model",
      join(dir, "model"),
      "--prompts",
      join(dir, "gen.jsonl"),
      "--oracle",
      join(dir, "judge.yaml"),
      "--max-new-tokens",
      "4",
    ];
  },
);

// --- file-system failures: one line, never a stack trace ---
add(
  "file-system",
  "inputs",
  "dno logprobs --out in a missing folder",
  /missing\/lp\.json: cannot write: no such file or directory \(open, ENOENT\)/,
  (dir) => [...logprobs(dir).slice(0, -1), join(dir, "missing", "lp.json")],
);
add(
  "file-system",
  "inputs",
  "dno generate --output onto a directory",
  /out\.jsonl: cannot write: is a directory, a file was expected/,
  (dir) => {
    mkdirSync(join(dir, "out.jsonl"));
    return generate(dir);
  },
);
add("file-system", "inputs", "dno init onto a file", /a-file: already exists \(mkdir, EEXIST\)/, (dir) => {
  writeFileSync(join(dir, "a-file"), "x");
  return ["init", join(dir, "a-file")];
});
add(
  "file-system",
  "inputs",
  "dno game --plot in a missing folder",
  /missing\/p\.svg: cannot write: no such file or directory \(open, ENOENT\)/,
  (dir) => [...game(dir), "--plot", join(dir, "missing", "p.svg")],
);

export const CORPUS: readonly BadInputCase[] = cases;
