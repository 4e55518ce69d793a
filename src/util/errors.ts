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

const FS_CODES: Record<string, string> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "a part of the path is not a directory",
  EISDIR: "is a directory, a file was expected",
  EEXIST: "already exists",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on the device",
  EROFS: "read-only file system",
  ENOTEMPTY: "directory not empty",
  EMFILE: "too many open files",
  ENAMETOOLONG: "file name too long",
  ELOOP: "too many symbolic links",
  EXDEV: "cannot move across file systems",
};

/** What a file-system error (ENOENT, EISDIR, ...) means, in words, with its call and code. */
export function fileSystemReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const what = (err.code && FS_CODES[err.code]) ?? err.message;
  return err.code && err.syscall ? `${what} (${err.syscall}, ${err.code})` : what;
}

/** A file-system error (ENOENT, EISDIR, ...) as one line naming the path, or undefined for other errors. */
export function fileSystemErrorText(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== "string" || typeof err.syscall !== "string")
    return undefined;
  const dest = (err as { dest?: string }).dest;
  const path = err.path ? `${err.path}${dest ? ` -> ${dest}` : ""}: ` : "";
  return `${path}${fileSystemReason(e)}`;
}
