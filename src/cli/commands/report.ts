import { join, resolve } from "node:path";
import type { Command } from "commander";
import { checkUndamaged, readRun, reportData } from "../../pipeline/inspect.js";
import { renderReport } from "../../report/html.js";
import { writeFileAtomic } from "../../util/atomic.js";

/** Renders `runDir/report.html` from what the run has finished so far; returns its path. */
export async function writeRunReport(runDir: string, out?: string): Promise<string> {
  const run = readRun(runDir);
  checkUndamaged(run);
  const html = await renderReport(reportData(run));
  const file = resolve(out ?? join(runDir, "report.html"));
  writeFileAtomic(file, html);
  return file;
}

export function register(program: Command): void {
  program
    .command("report")
    .description("write a self-contained HTML report (SVG plots) of a run")
    .argument("<run-dir>", "the run directory")
    .option("--out <file>", "where to write the HTML (default: <run-dir>/report.html)")
    .action(async (runDir: string, flags: { out?: string }) => {
      process.stdout.write(`${await writeRunReport(runDir, flags.out)}\n`);
    });
}
