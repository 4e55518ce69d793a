/** Progress bars with ETA on stderr for a pipeline run: one bar per long stage, a line per finished stage. */
import { SingleBar } from "cli-progress";
import { type GuardWarning, guardLine } from "../pipeline/guards.js";
import type { ProgressFn } from "../pipeline/run.js";
import type { StageEvents } from "../pipeline/stages.js";

/** What a stage's progress counts, by the stage label's last word (`3/train`, `2/eval judge`, `sft`). */
const UNITS: Record<string, string> = {
  sft: "steps",
  train: "steps",
  sample: "samples",
  eval: "samples",
  validation: "samples",
  annotate: "prompts",
  judge: "prompts",
  pi_ref: "responses",
  anchor: "responses",
};

export function progressUnit(stage: string): string {
  const last = stage.split(/[ /]/).pop() ?? "";
  return UNITS[last] ?? "items";
}

/**
 * The ETA averages the speed over the last ETA_BUFFER updates: stages report often and unevenly
 * (a batch of samples finishes at once), so a short window makes it jump.
 */
const ETA_BUFFER = 200;

export function stageProgress(): {
  progress: ProgressFn;
  events: StageEvents;
  /** A collapse guard's warning, on its own line below the bars. */
  warn(warning: GuardWarning): void;
  stop(): void;
} {
  let bar: SingleBar | undefined;
  let label = "";
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  const tty = process.stderr.isTTY === true;
  return {
    progress(stage, done, total) {
      if (!tty) return;
      if (stage !== label || bar === undefined) {
        stop();
        label = stage;
        bar = new SingleBar({
          format: `${stage.padEnd(22)} [{bar}] {value}/{total} ${progressUnit(stage)} | {percentage}% | {duration_formatted} elapsed, ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: ETA_BUFFER,
          etaAsynchronousUpdate: true,
        });
        bar.start(total, done);
      }
      bar.update(done);
    },
    events: {
      // Stages an earlier process finished are skipped silently; `dno status` lists them.
      finish(record, skipped) {
        if (skipped) return;
        stop();
        process.stderr.write(`  ${record.name}: ${record.seconds.toFixed(1)} s\n`);
      },
    },
    warn(warning) {
      stop();
      process.stderr.write(`${guardLine(warning)}\n`);
    },
    stop,
  };
}
