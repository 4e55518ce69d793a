/** Where tests find ../shared (models, the PyTorch reference tool): beside the repository or above it. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const PYTHON = "/usr/bin/python3";

/** `shared/<relative>` in the repository's parent folder or the nearest folder above it; undefined if none. */
export function findShared(relative: string): string | undefined {
  const repo = fileURLToPath(new URL("../..", import.meta.url));
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

/** Why a test that needs the reference must skip (a sentence), or false when it can run. */
export function torchReferenceSkip(reference: string | undefined): string | false {
  if (!reference)
    return "the PyTorch reference shared/reference/torch_llama.py is not beside the repository (set DNO_TORCH_REFERENCE)";
  if (spawnSync(PYTHON, ["-c", "import torch, numpy"], { stdio: "ignore" }).status !== 0)
    return `PyTorch not available (${PYTHON} -c "import torch, numpy" failed; apt-get install -y python3-torch python3-numpy)`;
  return false;
}
