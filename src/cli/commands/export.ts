import { statSync } from "node:fs";
import { type Command, Option } from "commander";
import { exportGguf, type GgufDtype, ggufSource } from "../../model/gguf.js";
import { CausalLM } from "../../model/model.js";
import { loadTokenizer } from "../../model/tokenizer.js";

interface ExportFlags {
  model: string;
  format: "gguf";
  output: string;
  dtype: GgufDtype;
  name?: string;
}

function runExport(flags: ExportFlags): void {
  const model = CausalLM.load(flags.model);
  const tokenizer = loadTokenizer(flags.model);
  exportGguf(flags.output, ggufSource(model.config, model.params), tokenizer, {
    dtype: flags.dtype,
    name: flags.name,
  });
  const mib = (statSync(flags.output).size / 1024 ** 2).toFixed(1);
  process.stderr.write(
    `wrote ${flags.output} (GGUF ${flags.dtype.toUpperCase()}, ${mib} MiB) for llama.cpp and Ollama\n`,
  );
}

export function register(program: Command): void {
  program
    .command("export")
    .description("export a checkpoint for other runtimes: GGUF (llama.cpp, Ollama)")
    .requiredOption(
      "--model <dir>",
      "Hugging Face model directory (config.json, safetensors, tokenizer.json)",
    )
    .addOption(new Option("--format <format>", "output format").choices(["gguf"]).default("gguf"))
    .requiredOption("--output <file>", "the file to write, e.g. model.gguf")
    .addOption(
      new Option("--dtype <dtype>", "weight type of the matrices (norms stay F32)")
        .choices(["f32", "f16"])
        .default("f16"),
    )
    .option("--name <name>", "general.name in the GGUF metadata")
    .action((flags: ExportFlags) => runExport(flags));
}
