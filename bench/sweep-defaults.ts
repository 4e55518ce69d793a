/**
 * The sweep behind the templates' (and the schema's) learning rate and beta: DNO-Prct on the built-in
 * tasks, a small grid of (train.lr, objective.beta), everything else as in `dno init`'s templates.
 * Each task instance trains its SFT policy once; every grid point starts from it (as `dno compare`).
 *
 *   npm run build && node dist/bench/sweep-defaults.js --out /tmp/sweep [--model shared/models/babyllama-105]
 *     [--lrs 5e-5,1.5e-4,5e-4,1e-3] [--betas 0.1,0.3] [--only demo-seed7,hf-babyllama] [--pi1 DIR]
 *
 * Tasks: the demo's (reverse a word, from scratch) on instance seed 7 (one of the demo's design
 * instances; seed 1 is the demo's own, kept out), and `dno init --task hf` (shout a word) on --model
 * (a pretrained SentencePiece model). Small on purpose: the machine is shared.
 * Prints one JSON line per run and a markdown table (final win rate against pi_1, accuracy, guards).
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { INIT_TASKS } from "../src/init/tasks.js";
import { parseRunConfig, type RunConfigInput } from "../src/pipeline/config.js";
import { policyPath, runPipeline } from "../src/pipeline/run.js";
import { writeFileAtomic } from "../src/util/atomic.js";

interface Instance {
  name: string;
  task: string;
  seed: number;
}

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    model: { type: "string" },
    lrs: { type: "string", default: "5e-5,1.5e-4,5e-4,1e-3" },
    betas: { type: "string", default: "0.1,0.3" },
    only: { type: "string" },
    /** pi_1 of an earlier sweep of the same instance (its checkpoints/pi_1): skips the SFT. */
    pi1: { type: "string" },
  },
});
const out = resolve(values.out ?? "sweep");
const LRS = values.lrs.split(",").map(Number);
const BETAS = values.betas.split(",").map(Number);
const instances: Instance[] = [
  { name: "demo-seed7", task: "demo", seed: 7 },
  ...(values.model ? [{ name: "hf-babyllama", task: "hf", seed: 1 }] : []),
].filter((i) => values.only === undefined || values.only.split(",").includes(i.name));

const rows: string[] = [];
for (const inst of instances) {
  const dir = join(out, inst.name);
  mkdirSync(dir, { recursive: true });
  const files = INIT_TASKS[inst.task]!.files(values.model && resolve(values.model), inst.seed);
  for (const [name, content] of Object.entries(files)) {
    if (!existsSync(join(dir, name))) writeFileAtomic(join(dir, name), content);
  }
  const base = parseYaml(files["dno.yaml"]!) as RunConfigInput;
  let shared: string | undefined = values.pi1 && resolve(values.pi1);
  for (const lr of LRS) {
    for (const beta of BETAS) {
      const name = `lr${lr}-beta${beta}`;
      const input: RunConfigInput = {
        ...base,
        run_dir: name,
        objective: { ...base.objective, beta },
        train: { ...base.train, lr },
        guards: { stop_on_collapse: false },
        ...(shared && { model: { path: shared }, sft: undefined }),
      };
      const config = parseRunConfig(input, join(dir, "dno.yaml"));
      const started = performance.now();
      const result = await runPipeline({ config });
      shared ??= join(config.run_dir, policyPath(1));
      const last = result.evals[result.evals.length - 1]!;
      const line = {
        bench: "sweep-defaults",
        instance: inst.name,
        lr,
        beta,
        winrate_vs_initial: result.evals.slice(1).map((e) => round(e.winrate_vs_initial)),
        accuracy: result.evals.map((e) => round(e.metrics.accuracy ?? null)),
        winrate_vs_teacher: round(last.winrate_vs_teacher),
        guards: result.warnings.map((w) => `${w.t}:${w.guard}`),
        seconds: Math.round((performance.now() - started) / 100) / 10,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      rows.push(
        `| ${inst.name} | ${lr} | ${beta} | ${line.winrate_vs_initial.join(" / ")} | ${line.accuracy.join(" / ")} | ${line.guards.join(", ") || "–"} |`,
      );
    }
  }
}
const table = [
  "| task | train.lr | beta | win rate vs pi_1 by iteration | accuracy (pi_1 / ... / final) | guards tripped |",
  "|---|---|---|---|---|---|",
  ...rows,
].join("\n");
writeFileAtomic(join(out, "sweep.md"), `${table}\n`);
process.stdout.write(`${table}\n`);

function round(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}
