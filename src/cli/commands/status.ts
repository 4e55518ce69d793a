import type { Command } from "commander";
import { checkUndamaged, nextStage, readRun, statusText } from "../../pipeline/inspect.js";

export function register(program: Command): void {
  program
    .command("status")
    .description("show which stages of a run have finished and what runs next")
    .argument("<run-dir>", "the run directory")
    .option("--json", "print the finished stages as JSON")
    .action((runDir: string, flags: { json?: boolean }) => {
      const run = readRun(runDir);
      if (flags.json) {
        const done = run.stages.map((s) => ({ name: s.name, seconds: s.seconds, finished_at: s.finishedAt }));
        const next = nextStage(run) ?? null;
        const damage = run.damage.map((d) => d.message);
        process.stdout.write(
          `${JSON.stringify({ run_dir: runDir, stages: done, planned: run.plan.length, next, damage })}\n`,
        );
      } else {
        process.stdout.write(`${statusText(run)}\n`);
      }
      checkUndamaged(run);
    });
}
