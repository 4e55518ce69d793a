/**
 * An error the user can act on: bad input, a bad config, a damaged file.
 * The CLI prints its message alone (no stack) and exits non-zero.
 * Messages name the file and the place (file:line, a field path, a byte offset).
 */
export class DnoError extends Error {
  override name = "DnoError";
}

/** `file:line: message` for errors found at a line of a text file. */
export function atLine(file: string, line: number, message: string): DnoError {
  return new DnoError(`${file}:${line}: ${message}`);
}
