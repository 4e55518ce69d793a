import { constants } from "node:buffer";
import { readFileSync, statSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { DnoError } from "./errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A text file's contents, which must be UTF-8 (never silently replaced): a missing, unreadable,
 * too large or badly encoded file is one DnoError naming it (and the line of a bad byte).
 */
export function readTextFile(file: string): string {
  let bytes: Buffer;
  try {
    const size = statSync(file).size;
    if (size > constants.MAX_STRING_LENGTH) {
      throw new Error(
        `${size} bytes, more than the ${constants.MAX_STRING_LENGTH} a text file may have here`,
      );
    }
    bytes = readFileSync(file);
  } catch (e) {
    throw new DnoError(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, at).filter((b) => b === 0x0a).length + 1;
    throw new DnoError(`${file}:${line}: invalid UTF-8 (byte ${at}); text files must be UTF-8`);
  }
}

/** The offset of the first byte that does not belong to a valid UTF-8 sequence. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const n =
      b < 0x80 ? 0 : b >= 0xc2 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    if (n > 0 && i + n >= bytes.length) return i; // cut short by the end of the file
    for (let k = 1; k <= n; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    // Overlong 3- and 4-byte forms, UTF-16 surrogates, and code points past U+10FFFF.
    const c = bytes[i + 1]!;
    if (n === 2 && ((b === 0xe0 && c < 0xa0) || (b === 0xed && c >= 0xa0))) return i;
    if (n === 3 && ((b === 0xf0 && c < 0x90) || (b === 0xf4 && c >= 0x90))) return i;
    i += n + 1;
  }
  return bytes.length;
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
