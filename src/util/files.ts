import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { DnoError } from "./errors.js";

/** A text file's contents; a missing or unreadable file is one DnoError naming it. */
export function readTextFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new DnoError(`${file}: cannot read: ${(e as Error).message}`);
  }
}

/** Parses JSON text read from `file`; a syntax error names the file. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DnoError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

export function readJsonFile(file: string): unknown {
  return parseJsonText(readTextFile(file), file);
}

/** A YAML (or JSON, which is YAML) file, parsed; a syntax error names the file and its line. */
export function readYamlFile(file: string): unknown {
  const text = readTextFile(file);
  try {
    return parseYaml(text);
  } catch (e) {
    throw new DnoError(`${file}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}
