/**
 * The Python the reference tools run in, and whether the tests that compare with the PyTorch reference
 * (found by src/util/shared-dir.ts) can run.
 */
import { spawnSync } from "node:child_process";

export const PYTHON = "/usr/bin/python3";

/** Why a test that needs the reference must skip (a sentence), or false when it can run. */
export function torchReferenceSkip(reference: string | undefined): string | false {
  if (!reference)
    return "the PyTorch reference shared/reference/torch_llama.py is not beside the repository (set DNO_TORCH_REFERENCE)";
  if (spawnSync(PYTHON, ["-c", "import torch, numpy"], { stdio: "ignore" }).status !== 0)
    return `PyTorch not available (${PYTHON} -c "import torch, numpy" failed; apt-get install -y python3-torch python3-numpy)`;
  return false;
}
