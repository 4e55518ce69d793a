import type { Command } from "commander";
import { loadRunConfig } from "../../pipeline/config.js";
import { runPipeline } from "../../pipeline/run.js";
import { iterationTable } from "../iteration-table.js";
import { stageProgress } from "../stage-progress.js";
import { writeRunReport } from "./report.js";

export function register(program: Command): void {
  program
    .command("run")
    .description(
      "run (or resume) DNO-Prct iterations as configured; kill it any time, run it again to continue",
    )
    .requiredOption("--config <file>", "the run config (dno.yaml; `dno init` writes an example)")
    .action(async (flags: { config: string }) => {
      const config = loadRunConfig(flags.config);
      const ui = stageProgress();
      try {
        const result = await runPipeline({ config, progress: ui.progress, events: ui.events, warn: ui.warn });
        ui.stop();
        const report = await writeRunReport(result.runDir);
        const ending =
          result.stoppedAfter !== null
            ? `stopped after iteration ${result.stoppedAfter} (guards.stop_on_collapse)`
            : "finished";
        process.stdout.write(
          `${iterationTable(result)}\n${ending}: result pi_${result.best} ` +
            `(${result.runDir}/checkpoints/pi_${result.best}); final weights sha256 ${result.finalWeightsSha256}\n` +
            `report: ${report}\n`,
        );
      } finally {
        ui.stop();
      }
    });
}
