/**
 * Where the tests and the benches find ../shared (models, the PyTorch reference tool): in the folder
 * that holds the repository, or the nearest folder above it that has one.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** `shared/<relative>` in the repository's parent folder or the nearest folder above it; undefined if none. */
export function findShared(relative: string): string | undefined {
  const repo = fileURLToPath(new URL("../../..", import.meta.url));
  for (let dir = dirname(repo); ; dir = dirname(dir)) {
    const candidate = join(dir, "shared", relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** DNO_TORCH_REFERENCE, or shared/reference/torch_llama.py in the repository's parent folder or above. */
export function findTorchReference(): string | undefined {
  return process.env.DNO_TORCH_REFERENCE ?? findShared("reference/torch_llama.py");
}
