import { statSync } from "node:fs";
import { type Command, Option } from "commander";
import { exportGguf, type GgufDtype, ggufSource } from "../../model/gguf.js";
import { exportGgufAdapter } from "../../model/gguf-lora.js";
import { LoraAdapter, readCheckpointConfig } from "../../model/lora.js";
import { CausalLM } from "../../model/model.js";
import { loadTokenizer } from "../../model/tokenizer.js";
import { DnoError } from "../../util/errors.js";

interface ExportFlags {
  model: string;
  format: "gguf";
  output: string;
  dtype: GgufDtype;
  name?: string;
  adapter?: string;
  adapterOnly?: boolean;
}

function runExport(flags: ExportFlags): void {
  const options = { dtype: flags.dtype, name: flags.name };
  let what = "for llama.cpp and Ollama";
  if (flags.adapterOnly) {
    if (!flags.adapter) throw new DnoError("dno export: --adapter-only needs --adapter DIR");
    exportGgufAdapter(
      flags.output,
      LoraAdapter.load(flags.adapter, readCheckpointConfig(flags.model)),
      options,
    );
    what = "a llama.cpp LoRA adapter of the base's own export";
  } else {
    const model = CausalLM.load(flags.model, { adapter: flags.adapter });
    if (model.adapter) model.mergeAdapter();
    exportGguf(flags.output, ggufSource(model.config, model.params), loadTokenizer(flags.model), options);
  }
  const mib = (statSync(flags.output).size / 1024 ** 2).toFixed(1);
  process.stderr.write(`wrote ${flags.output} (GGUF ${flags.dtype.toUpperCase()}, ${mib} MiB), ${what}\n`);
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
    .option("--adapter <dir>", "a PEFT LoRA adapter directory, merged into the exported weights")
    .option(
      "--adapter-only",
      "export --adapter alone, as a llama.cpp LoRA adapter GGUF for the base's export",
    )
    .action((flags: ExportFlags) => runExport(flags));
}
