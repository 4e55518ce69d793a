/**
 * `npm run bench:engine`: the native engine beside its peers, each measured in this same run.
 * - sgemm GFLOPS at 512/1024/2048 beside OpenBLAS cblas_sgemm (Debian libopenblas-dev, installed here
 *   when missing; bench/openblas_sgemm.c compiled into .bench/; run without OPENBLAS_CORETYPE and
 *   OPENBLAS_L2_SIZE, which these machines set and which halve its speed);
 * - bf16 GEMM (bgemm) GFLOPS at 1024/2048 beside PyTorch's bf16 matmul (bench/torch_matmul.py), where
 *   the CPU has bf16 hardware;
 * - training (forward + backward + AdamW) and forward tokens/s for configs S and M (batch 16 x 128) and
 *   L and Q (the shapes of SmolLM2-135M and Qwen2.5-0.5B, batch 8 x 256), beside PyTorch through the
 *   reference tool's `bench` (../shared/reference/torch_llama.py, looked for above the repository, or
 *   DNO_TORCH_REFERENCE). The peer is PyTorch's best configuration in this run: float32 or `--autocast
 *   bf16` (where the CPU has bf16 hardware), 1 or 2 threads. The engine trains in bf16 (mixed precision) where the CPU has bf16 hardware,
 *   S and M in float32 too, and counts its faster precision;
 * - peak RSS of training M (beside PyTorch's) and Q, and model-FLOP utilisation on L: 6 x parameters x
 *   tokens / step time over the GEMM peak measured here for the precision in use;
 * - the CPU's float32 FMA peak (bench/fma_peak.c: independent vector FMA chains, no memory), and each
 *   config's model FLOPs per second in training, dno's and PyTorch's, as shares of it;
 * - LoRA (r 16, all seven projections, base frozen) beside full fine-tuning on config L, SmolLM2-135M's
 *   shape: training tokens/s and peak RSS (bench/engine-lora.ts).
 * DNO_BENCH_CONFIGS=S,M,L,Q picks configs (default all; Q takes minutes and ~10 GB per process), and
 * DNO_BENCH_LORA=0 skips the LoRA comparison.
 * Every engine measurement runs in its own child process so that its peak RSS is its own.
 * The last line is one JSON object: speed ratios engine / peer (> 1: the engine is faster), the
 * peak-RSS ratio engine / torch (< 1: the engine uses less), MFU, the FMA peak, Q's peak RSS, the
 * kernel, and LoRA / full fine-tuning on L.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/core/rng.js";
import { type Engine, engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { DnoError } from "../src/util/errors.js";
import { findTorchReference } from "../src/util/shared-dir.js";
import { languageModelStep } from "./child.js";
import { BENCH_CONFIGS } from "./configs.js";
import { type LoraBenchKind, loraBench, loraBenchChild } from "./engine-lora.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const workDir = join(repoRoot, ".bench");
const GEMM_SIZES = [512, 1024, 2048];
const BGEMM_SIZES = [1024, 2048];
const GEMM_ROUNDS = 5;
const FMA_REPS = 5;
const LR = 1e-4;

const CONFIGS = BENCH_CONFIGS;
type ConfigName = keyof typeof CONFIGS;
/** Batch, timed steps after warm-up steps (the same for the engine and PyTorch), alternating rounds. */
const RUNS: Record<
  ConfigName,
  { batch: number; seq: number; steps: number; warmup: number; rounds: number }
> = {
  S: { batch: 16, seq: 128, steps: 20, warmup: 3, rounds: 2 },
  M: { batch: 16, seq: 128, steps: 10, warmup: 2, rounds: 2 },
  L: { batch: 8, seq: 256, steps: 3, warmup: 1, rounds: 1 },
  Q: { batch: 8, seq: 256, steps: 2, warmup: 1, rounds: 1 },
};
/** PyTorch configurations tried for each model: its peer is the fastest. */
const TORCH_SETUPS = [
  { autocast: "none", threads: 1 },
  { autocast: "none", threads: 2 },
  { autocast: "bf16", threads: 1 },
  { autocast: "bf16", threads: 2 },
] as const;
type Precision = "fp32" | "bf16";

/**
 * The PyTorch setups tried. Without bf16 hardware PyTorch emulates bf16 autocast: measured on an AVX2 CPU,
 * config S trained at 450 tokens/s against 10,400 in float32, and one step of L or Q takes many minutes.
 */
function torchSetups(): (typeof TORCH_SETUPS)[number][] {
  if (engine().bgemmHasHardware()) return [...TORCH_SETUPS];
  console.log("torch autocast bf16: not measured, this CPU has no bf16 hardware (PyTorch would emulate it)");
  return TORCH_SETUPS.filter((s) => s.autocast === "none");
}

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

/** The CPU's float32 FMA peak (bench/fma_peak.c compiled for this CPU) on 1 thread and on `threads`. */
function fmaPeak(threads: number): { one: number; all: number; vectorBytes: number } {
  mkdirSync(workDir, { recursive: true });
  const exe = join(workDir, "fma_peak");
  run("cc", [
    "-O2",
    "-march=native",
    "-ffp-contract=fast",
    join(repoRoot, "bench/fma_peak.c"),
    "-o",
    exe,
    "-lpthread",
  ]);
  const measure = (t: number) => lastJsonLine(run(exe, [`${t}`, `${FMA_REPS}`]));
  const one = measure(1);
  const all = measure(threads);
  const peak = {
    one: one.gflops as number,
    all: all.gflops as number,
    vectorBytes: one.vector_bytes as number,
  };
  console.log(
    `float32 FMA peak (${peak.vectorBytes}-byte vectors): 1 thread ${peak.one.toFixed(1)}, ` +
      `${threads} threads ${peak.all.toFixed(1)} GFLOPS`,
  );
  return peak;
}

/** Best GFLOPS of the engine's sgemm (or bgemm) on an n x n x n product over `reps` timed calls. */
function dnoGemmGflops(addon: Engine, n: number, reps: number, precision: Precision = "fp32"): number {
  const rng = Rng.derive(1, "bench-gemm", n);
  const a = new Float32Array(n * n).map(() => rng.float() - 0.5);
  const b = new Float32Array(n * n).map(() => rng.float() - 0.5);
  const c = new Float32Array(n * n);
  const gemm = precision === "bf16" ? addon.bgemm : addon.sgemm;
  gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
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

interface BgemmRow {
  n: number;
  dno: number;
  torch: number;
  ratio: number;
}

/** bgemm beside PyTorch's bf16 matmul on all cores, alternating, best of GEMM_ROUNDS each. */
function bgemmBench(): BgemmRow[] {
  const addon = engine();
  const threads = addon.numThreads();
  console.log(`bgemm kernel ${addon.bgemmKernel()}, ${threads} threads`);
  const script = join(repoRoot, "bench/torch_matmul.py");
  return BGEMM_SIZES.map((n) => {
    const reps = Math.max(3, Math.round(8e10 / n ** 3));
    let dno = 0;
    let torch = 0;
    for (let round = 0; round < GEMM_ROUNDS; round++) {
      const out = run("/usr/bin/python3", [script, `${n}`, `${reps}`, "bfloat16", `${threads}`]);
      torch = Math.max(torch, lastJsonLine(out).gflops as number);
      dno = Math.max(dno, dnoGemmGflops(addon, n, reps, "bf16"));
    }
    const row = { n, dno, torch, ratio: dno / torch };
    console.log(
      `bgemm ${n}^3: dno ${dno.toFixed(1)} GFLOPS, torch bf16 matmul ${torch.toFixed(1)} GFLOPS, ratio ${row.ratio.toFixed(3)}`,
    );
    return row;
  });
}

interface PeerResult {
  trainTokensPerS: number;
  forwardTokensPerS: number;
  peakRssMb: number;
  /** how it ran: the engine's precision, or PyTorch's autocast and threads */
  setup: string;
  /** the engine only: milliseconds per training step in each phase of the decoder (wall time) */
  trainStepMs?: Record<string, number>;
}

// Runs a command under a Python parent that reports the peak RSS of its child (the reference tool
// re-executes itself in place, so its pid and its rusage stay the same).
const RSS_WRAPPER = `import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr)
sys.exit(code)`;

function torchBench(reference: string, name: ConfigName, setup: (typeof TORCH_SETUPS)[number]): PeerResult {
  mkdirSync(workDir, { recursive: true });
  const configPath = join(workDir, `${name}.json`);
  writeFileSync(configPath, JSON.stringify(CONFIGS[name]));
  const { batch, seq, steps, warmup } = RUNS[name];
  const args = ["-c", RSS_WRAPPER, "/usr/bin/python3", reference, "bench", "--config", configPath];
  args.push("--batch", `${batch}`, "--seq", `${seq}`, "--steps", `${steps}`, "--warmup", `${warmup}`);
  args.push("--autocast", setup.autocast, "--threads", `${setup.threads}`);
  const r = spawnSync("/usr/bin/python3", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new DnoError(`torch_llama.py bench exited ${r.status}: ${r.stderr.trim()}`);
  const out = lastJsonLine(r.stdout);
  const rss = lastJsonLine(r.stderr).peak_rss_kb as number;
  return {
    trainTokensPerS: out.train_tokens_per_s as number,
    forwardTokensPerS: out.forward_tokens_per_s as number,
    peakRssMb: rss / 1024,
    setup: `${setup.autocast === "bf16" ? "autocast bf16" : "float32"}, ${setup.threads} thread${setup.threads > 1 ? "s" : ""}`,
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
function engineChild(name: ConfigName, precision: Precision): void {
  const config = parseConfig(CONFIGS[name], `config ${name}`);
  const model = CausalLM.init(config, 0);
  model.precision = precision;
  const { batch, seq, steps, warmup } = RUNS[name];
  // One forward + backward per step, as PyTorch does; Q keeps the default pieces (about 1 GiB of
  // activations each; one forward + backward per piece, the loss being per sequence) to train in under
  // 10 GB: model.recompute measured slower there.
  if (name !== "Q") model.maxBatchTokens = batch * seq;
  const { step, examples } = languageModelStep(model, Rng.derive(0, "bench-engine", name), batch, seq, LR);
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
    trainTokensPerS: (batch * seq) / train,
    forwardTokensPerS: (batch * seq) / forward,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    setup: precision === "bf16" ? `bf16 (${engine().bgemmKernel()})` : "float32",
    trainStepMs,
  };
  console.log(JSON.stringify(result));
}

function engineBench(name: ConfigName, precision: Precision): PeerResult {
  const out = run(process.execPath, [fileURLToPath(import.meta.url), "--engine-child", name, precision]);
  return lastJsonLine(out) as unknown as PeerResult;
}

/** The run with the higher training speed (its forward speed, RSS and profile come with it). */
function faster(a: PeerResult, b: PeerResult): PeerResult {
  return a.trainTokensPerS >= b.trainTokensPerS ? a : b;
}

/**
 * Alternates the peers, best of the config's rounds each, as gemmBench does: every PyTorch setup and the
 * engine's precisions (bf16 where the CPU has it; S and M also float32).
 */
function modelBench(
  reference: string,
  name: ConfigName,
  setups: (typeof TORCH_SETUPS)[number][],
): { dno: PeerResult; torch: PeerResult } {
  const precisions: Precision[] = engine().bgemmHasHardware() ? ["bf16"] : ["fp32"];
  if ((name === "S" || name === "M") && precisions[0] === "bf16") precisions.push("fp32");
  let torch: PeerResult | undefined;
  let dno: PeerResult | undefined;
  for (let round = 0; round < RUNS[name].rounds; round++) {
    for (const setup of setups) {
      const r = torchBench(reference, name, setup);
      console.log(`  config ${name} torch ${r.setup}: train ${r.trainTokensPerS.toFixed(0)} tok/s`);
      torch = torch ? faster(torch, r) : r;
    }
    for (const precision of precisions) {
      const r = engineBench(name, precision);
      console.log(`  config ${name} dno ${r.setup}: train ${r.trainTokensPerS.toFixed(0)} tok/s`);
      dno = dno ? faster(dno, r) : r;
    }
  }
  if (!torch || !dno) throw new DnoError(`config ${name}: nothing measured`);
  const line = (who: string, r: PeerResult) =>
    `${who} (${r.setup}) train ${r.trainTokensPerS.toFixed(0)} tok/s, forward ${r.forwardTokensPerS.toFixed(0)} tok/s, ` +
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

/** Parameters of a config, as the engine lays them out. */
function parameterCount(name: ConfigName): number {
  return engine().paramLayout(parseConfig(CONFIGS[name], `config ${name}`)).total;
}

function main(): void {
  const childAt = process.argv.indexOf("--engine-child");
  if (childAt >= 0) {
    engineChild(process.argv[childAt + 1] as ConfigName, process.argv[childAt + 2] as Precision);
    return;
  }
  const loraChildAt = process.argv.indexOf("--lora-child");
  if (loraChildAt >= 0) {
    loraBenchChild(process.argv[loraChildAt + 1] as LoraBenchKind);
    return;
  }
  const names = (process.env.DNO_BENCH_CONFIGS ?? "S,M,L,Q")
    .split(",")
    .filter((n) => n in CONFIGS) as ConfigName[];
  const reference = findTorchReference();
  if (!reference) {
    throw new DnoError(
      "the PyTorch reference is missing: no shared/reference/torch_llama.py beside the repository or above it (set DNO_TORCH_REFERENCE)",
    );
  }
  const fma = fmaPeak(engine().numThreads());
  const gemm = gemmBench();
  const bgemm = engine().bgemmHasHardware() ? bgemmBench() : [];
  const setups = torchSetups();
  const results = new Map(names.map((name) => [name, modelBench(reference, name, setups)]));
  const ratio = (name: ConfigName) => {
    const r = results.get(name);
    return r ? round3(r.dno.trainTokensPerS / r.torch.trainTokensPerS) : null;
  };
  // Model FLOPs per second (6 x parameters x tokens, attention left out) beside the FMA peak: how far
  // a ratio can go when both sides run on the same cores.
  for (const [name, r] of results) {
    const rate = (x: PeerResult) => (6 * parameterCount(name) * x.trainTokensPerS) / 1e9;
    const share = (x: PeerResult) =>
      `${rate(x).toFixed(0)} GFLOPS (${((100 * rate(x)) / fma.all).toFixed(0)}%)`;
    console.log(
      `config ${name}: model FLOPs per second in training, share of the float32 FMA peak: ` +
        `dno ${share(r.dno)}, torch ${share(r.torch)}`,
    );
  }
  const L = results.get("L");
  const lBf16 = L?.dno.setup.startsWith("bf16") ?? false;
  // MFU on L: 6 x parameters x tokens per second over the best GEMM speed measured in this run.
  const peak = lBf16 ? Math.max(...bgemm.map((r) => r.dno)) : Math.max(...gemm.map((r) => r.dno));
  const mfuL = L ? (6 * parameterCount("L") * L.dno.trainTokensPerS) / (peak * 1e9) : null;
  if (L)
    console.log(
      `config L: model-FLOP utilisation ${(100 * (mfuL ?? 0)).toFixed(1)}% of ${peak.toFixed(0)} GFLOPS`,
    );
  const M = results.get("M");
  const lora =
    process.env.DNO_BENCH_LORA === "0" ? null : loraBench(fileURLToPath(import.meta.url), "--lora-child");
  const summary = {
    bench: "engine",
    train_S_vs_torch: ratio("S"),
    train_M_vs_torch: ratio("M"),
    train_L_vs_torch: ratio("L"),
    train_Q_vs_torch: ratio("Q"),
    gemm_vs_openblas: round3(Math.min(...gemm.map((r) => r.ratio))),
    bgemm_vs_torch: bgemm.length > 0 ? round3(Math.min(...bgemm.map((r) => r.ratio))) : null,
    peak_rss_M_vs_torch: M ? round3(M.dno.peakRssMb / M.torch.peakRssMb) : null,
    mfu_L: mfuL === null ? null : round3(mfuL),
    fma_peak_gflops: Math.round(fma.all),
    peak_rss_Q_mb: results.has("Q") ? Math.round(results.get("Q")!.dno.peakRssMb) : null,
    kernel: L
      ? lBf16
        ? engine().bgemmKernel()
        : "fp32"
      : engine().bgemmHasHardware()
        ? engine().bgemmKernel()
        : "fp32",
    lora_L_vs_full: lora ? round3(lora.lora.trainTokensPerS / lora.full.trainTokensPerS) : null,
    lora_rss_L_vs_full: lora ? round3(lora.lora.peakRssMb / lora.full.peakRssMb) : null,
  };
  console.log(JSON.stringify(summary));
}

main();
