import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { DnoError, fileSystemErrorText } from "../util/errors.js";
import { commands } from "./commands/index.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command("dno")
    .description("Direct Nash Optimization: teach language models to self-improve with general preferences")
    .version(pkg.version)
    // Every error is one line, `dno: error: ...`; `dno <command> --help` shows the usage.
    .configureOutput({ outputError: (text, write) => write(`dno: ${text.trimEnd().split("\n")[0]}\n`) })
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/** Runs the CLI; returns the process exit code. User errors print one line, never a stack. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof DnoError) {
      process.stderr.write(`dno: error: ${e.message}\n`);
      return 1;
    }
    const fs = fileSystemErrorText(e);
    if (fs !== undefined) {
      process.stderr.write(`dno: error: ${fs}\n`);
      return 1;
    }
    throw e;
  }
}
