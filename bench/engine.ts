/**
 * `npm run bench:engine`: the native engine beside its peers, each measured in this same run.
 * - sgemm GFLOPS at 512/1024/2048 beside OpenBLAS cblas_sgemm (Debian libopenblas-dev, installed here
 *   when missing; bench/openblas_sgemm.c compiled into .bench/; run without OPENBLAS_CORETYPE and
 *   OPENBLAS_L2_SIZE, which these machines set and which halve its speed);
 * - training (forward + backward + AdamW) and forward tokens/s for configs S and M, batch 16 x 128,
 *   beside PyTorch through the reference tool's `bench` (../shared/reference/torch_llama.py, looked
 *   for above the repository), and the peak RSS of training M beside PyTorch's.
 * - LoRA (r 16, all seven projections, base frozen) beside full fine-tuning on config L, SmolLM2-135M's
 *   shape: training tokens/s and peak RSS (bench/engine-lora.ts).
 * Every engine measurement runs in its own child process so that its peak RSS is its own.
 * The last line is one JSON object: speed ratios engine / peer (> 1: the engine is faster) and the
 * peak-RSS ratio engine / torch (< 1: the engine uses less), and LoRA / full fine-tuning on L.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/core/rng.js";
import { type Engine, engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM, type Example } from "../src/model/model.js";
import { AdamW } from "../src/train/adamw.js";
import { trainStep } from "../src/train/step.js";
import { DnoError } from "../src/util/errors.js";
import { type LoraBenchKind, loraBench, loraBenchChild } from "./engine-lora.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const workDir = join(repoRoot, ".bench");
const GEMM_SIZES = [512, 1024, 2048];
const GEMM_ROUNDS = 5;
const MODEL_ROUNDS = 2;
const BATCH = 16;
const SEQ = 128;
const LR = 1e-4;

/** The two model sizes, as Hugging Face config.json objects. */
const CONFIGS = {
  S: {
    vocab_size: 256,
    hidden_size: 128,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    intermediate_size: 344,
  },
  M: {
    vocab_size: 256,
    hidden_size: 512,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    intermediate_size: 1376,
  },
};
type ConfigName = keyof typeof CONFIGS;
/** Timed steps after warm-up steps, the same for the engine and PyTorch. */
const STEPS: Record<ConfigName, { steps: number; warmup: number }> = {
  S: { steps: 20, warmup: 3 },
  M: { steps: 10, warmup: 2 },
};

/** Environment for OpenBLAS-based peers: without the variables that slow it down on these machines. */
function openblasEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new DnoError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new DnoError(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

function lastJsonLine(text: string): Record<string, unknown> {
  const lines = text.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

/** Compiles bench/openblas_sgemm.c, installing libopenblas-dev first when its header is absent. */
function buildOpenblasPeer(): string {
  const header = "/usr/include/x86_64-linux-gnu/cblas.h";
  const libdir = "/usr/lib/x86_64-linux-gnu";
  if (!existsSync(header) || !existsSync(join(libdir, "libopenblas.so"))) {
    console.error("installing libopenblas-dev (apt-get) for the OpenBLAS peer ...");
    const apt = spawnSync("apt-get", ["install", "-y", "-qq", "libopenblas-dev"], {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (apt.status !== 0)
      throw new DnoError("apt-get install libopenblas-dev failed (needs root and Debian apt)");
  }
  mkdirSync(workDir, { recursive: true });
  const exe = join(workDir, "openblas_sgemm");
  run("cc", ["-O2", join(repoRoot, "bench/openblas_sgemm.c"), "-o", exe, `-L${libdir}`, "-lopenblas"]);
  return exe;
}

/** Best GFLOPS of the engine's sgemm on an n x n x n product over `reps` timed calls. */
function dnoGemmGflops(addon: Engine, n: number, reps: number): number {
  const rng = Rng.derive(1, "bench-gemm", n);
  const a = new Float32Array(n * n).map(() => rng.float() - 0.5);
  const b = new Float32Array(n * n).map(() => rng.float() - 0.5);
  const c = new Float32Array(n * n);
  addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
    best = Math.min(best, (performance.now() - t) / 1e3);
  }
  return (2 * n ** 3) / best / 1e9;
}

interface GemmRow {
  n: number;
  dno: number;
  openblas: number;
  ratio: number;
}

/** Alternates the two peers, best of GEMM_ROUNDS each, so that a noisy neighbour hits both alike. */
function gemmBench(): GemmRow[] {
  const addon = engine();
  const peer = buildOpenblasPeer();
  console.log(`sgemm kernel ${addon.sgemmKernel()}, ${addon.numThreads()} threads`);
  return GEMM_SIZES.map((n) => {
    const reps = Math.max(3, Math.round(2e10 / n ** 3));
    let dno = 0;
    let openblas = 0;
    for (let round = 0; round < GEMM_ROUNDS; round++) {
      openblas = Math.max(
        openblas,
        lastJsonLine(run(peer, [`${n}`, `${reps}`], openblasEnv())).gflops as number,
      );
      dno = Math.max(dno, dnoGemmGflops(addon, n, reps));
    }
    const row = { n, dno, openblas, ratio: dno / openblas };
    console.log(
      `sgemm ${n}^3: dno ${dno.toFixed(1)} GFLOPS, OpenBLAS ${openblas.toFixed(1)} GFLOPS, ratio ${row.ratio.toFixed(3)}`,
    );
    return row;
  });
}

/** The reference tool, looked for as shared/reference/torch_llama.py beside the repository or above it. */
function findTorchReference(): string {
  for (let dir = dirname(repoRoot); ; dir = dirname(dir)) {
    const candidate = join(dir, "shared/reference/torch_llama.py");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) {
      throw new DnoError(
        `the PyTorch reference is missing: no shared/reference/torch_llama.py in ${dirname(repoRoot)} or above`,
      );
    }
  }
}

interface PeerResult {
  trainTokensPerS: number;
  forwardTokensPerS: number;
  peakRssMb: number;
  /** the engine only: milliseconds per training step in each phase of the decoder (wall time) */
  trainStepMs?: Record<string, number>;
}

// Runs a command under a Python parent that reports the peak RSS of its child (the reference tool
// re-executes itself in place, so its pid and its rusage stay the same).
const RSS_WRAPPER = `import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr)
sys.exit(code)`;

function torchBench(reference: string, name: ConfigName): PeerResult {
  mkdirSync(workDir, { recursive: true });
  const configPath = join(workDir, `${name}.json`);
  writeFileSync(configPath, JSON.stringify(CONFIGS[name]));
  const { steps, warmup } = STEPS[name];
  const args = ["-c", RSS_WRAPPER, "/usr/bin/python3", reference, "bench", "--config", configPath];
  args.push("--batch", `${BATCH}`, "--seq", `${SEQ}`, "--steps", `${steps}`, "--warmup", `${warmup}`);
  const r = spawnSync("/usr/bin/python3", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new DnoError(`torch_llama.py bench exited ${r.status}: ${r.stderr.trim()}`);
  const out = lastJsonLine(r.stdout);
  const rss = lastJsonLine(r.stderr).peak_rss_kb as number;
  return {
    trainTokensPerS: out.train_tokens_per_s as number,
    forwardTokensPerS: out.forward_tokens_per_s as number,
    peakRssMb: rss / 1024,
  };
}

/** Mean seconds per call of fn over `steps` calls after `warmup` calls (as the reference tool times). */
function timed(fn: () => void, warmup: number, steps: number): number {
  for (let i = 0; i < warmup; i++) fn();
  const t = performance.now();
  for (let i = 0; i < steps; i++) fn();
  return (performance.now() - t) / 1e3 / steps;
}

/**
 * The engine's side, run in a child process: what the reference tool's bench does (random tokens,
 * cross-entropy at every position, AdamW lr 1e-4 with torch's defaults, then forward only).
 */
function engineChild(name: ConfigName): void {
  const config = parseConfig(CONFIGS[name], `config ${name}`);
  const model = CausalLM.init(config, 0);
  const optimizer = new AdamW(model, { weightDecay: 0.01, maxGradNorm: 0 });
  const rng = Rng.derive(0, "bench-engine", name);
  // Each sequence is SEQ + 1 tokens: the first SEQ are the input, the last SEQ the targets.
  const examples: Example[] = Array.from({ length: BATCH }, () => {
    const tokens = Array.from({ length: SEQ + 1 }, () => rng.int(config.vocabSize));
    return { prompt: tokens.slice(0, 1), response: tokens.slice(1) };
  });
  const meanCrossEntropy = (seqLogprobs: Float64Array) => ({
    loss: -seqLogprobs.reduce((a, b) => a + b, 0) / (BATCH * SEQ),
    grad: new Float64Array(seqLogprobs.length).fill(-1 / (BATCH * SEQ)),
  });
  const { steps, warmup } = STEPS[name];
  const step = () => trainStep(model, optimizer, [{ examples, loss: meanCrossEntropy }], LR);
  for (let i = 0; i < warmup; i++) step();
  engine().kernelProfile(); // resets the phase clocks
  const train = timed(step, 0, steps);
  const trainStepMs: Record<string, number> = {};
  let inPhases = 0;
  for (const [phase, seconds] of Object.entries(engine().kernelProfile())) {
    trainStepMs[phase] = (seconds / steps) * 1e3;
    inPhases += seconds / steps;
  }
  trainStepMs["other (optimizer, JS)"] = (train - inPhases) * 1e3;
  const forward = timed(() => model.sequenceLogprobs(examples), warmup, steps);
  const result: PeerResult = {
    trainTokensPerS: (BATCH * SEQ) / train,
    forwardTokensPerS: (BATCH * SEQ) / forward,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    trainStepMs,
  };
  console.log(JSON.stringify(result));
}

function engineBench(name: ConfigName): PeerResult {
  const out = run(process.execPath, [fileURLToPath(import.meta.url), "--engine-child", name]);
  return lastJsonLine(out) as unknown as PeerResult;
}

/** The run with the higher training speed (its forward speed, RSS and profile come with it). */
function faster(a: PeerResult, b: PeerResult): PeerResult {
  return a.trainTokensPerS >= b.trainTokensPerS ? a : b;
}

/** Alternates the two peers, best of MODEL_ROUNDS each, as gemmBench does. */
function modelBench(reference: string, name: ConfigName): { dno: PeerResult; torch: PeerResult } {
  let torch = torchBench(reference, name);
  let dno = engineBench(name);
  for (let round = 1; round < MODEL_ROUNDS; round++) {
    torch = faster(torch, torchBench(reference, name));
    dno = faster(dno, engineBench(name));
  }
  const line = (who: string, r: PeerResult) =>
    `${who} train ${r.trainTokensPerS.toFixed(0)} tok/s, forward ${r.forwardTokensPerS.toFixed(0)} tok/s, ` +
    `peak RSS ${r.peakRssMb.toFixed(0)} MB`;
  console.log(`config ${name}: ${line("dno", dno)}; ${line("torch", torch)}`);
  console.log(
    `config ${name}: train ${(dno.trainTokensPerS / torch.trainTokensPerS).toFixed(3)}x, ` +
      `forward ${(dno.forwardTokensPerS / torch.forwardTokensPerS).toFixed(3)}x torch`,
  );
  const phases = Object.entries(dno.trainStepMs ?? {}).map(([phase, ms]) => `${phase} ${ms.toFixed(1)}`);
  console.log(`config ${name}: dno training step, ms per phase: ${phases.join(", ")}`);
  return { dno, torch };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function main(): void {
  const childAt = process.argv.indexOf("--engine-child");
  if (childAt >= 0) {
    engineChild(process.argv[childAt + 1] as ConfigName);
    return;
  }
  const loraChildAt = process.argv.indexOf("--lora-child");
  if (loraChildAt >= 0) {
    loraBenchChild(process.argv[loraChildAt + 1] as LoraBenchKind);
    return;
  }
  const reference = findTorchReference();
  const gemm = gemmBench();
  const S = modelBench(reference, "S");
  const M = modelBench(reference, "M");
  const L = loraBench(fileURLToPath(import.meta.url), "--lora-child");
  const summary = {
    bench: "engine",
    train_S_vs_torch: round3(S.dno.trainTokensPerS / S.torch.trainTokensPerS),
    train_M_vs_torch: round3(M.dno.trainTokensPerS / M.torch.trainTokensPerS),
    gemm_vs_openblas: round3(Math.min(...gemm.map((r) => r.ratio))),
    peak_rss_M_vs_torch: round3(M.dno.peakRssMb / M.torch.peakRssMb),
    lora_L_vs_full: round3(L.lora.trainTokensPerS / L.full.trainTokensPerS),
    lora_rss_L_vs_full: round3(L.lora.peakRssMb / L.full.peakRssMb),
  };
  console.log(JSON.stringify(summary));
}

main();
