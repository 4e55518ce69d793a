/** Finding ../shared (models, the PyTorch reference) from a checkout: the repository's parent folder or above. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** `shared/<relative>` in the repository's parent folder or the nearest folder above it; undefined if none. */
export function findShared(relative: string): string | undefined {
  const repo = fileURLToPath(new URL("../..", import.meta.url));
  for (let dir = dirname(repo); ; dir = dirname(dir)) {
    const candidate = join(dir, "shared", relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}
