import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { DnoError, fileSystemReason } from "./errors.js";

/**
 * Writes a file so that a crash at any moment leaves either the old file or the new one, never a mix:
 * write to a temporary sibling, fsync it, rename over the target, fsync the directory.
 * `data` may be a sequence of chunks, so large files (checkpoints) are written without one big buffer.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, "w");
    try {
      const chunks =
        typeof data === "string" ? [Buffer.from(data, "utf8")] : data instanceof Uint8Array ? [data] : data;
      for (const bytes of chunks) {
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    // A failed write (no space, the target a directory, ...) leaves nothing behind.
    rmSync(tmp, { force: true });
    if (e instanceof DnoError) throw e;
    throw new DnoError(`${path}: cannot write: ${fileSystemReason(e)}`);
  }
  const dirFd = openSync(dirname(path), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
