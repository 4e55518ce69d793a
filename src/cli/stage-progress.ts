/** Progress bars with ETA on stderr for a pipeline run: one bar per long stage, a line per finished stage. */
import { SingleBar } from "cli-progress";
import type { ProgressFn } from "../pipeline/run.js";
import type { StageEvents } from "../pipeline/stages.js";

export function stageProgress(): { progress: ProgressFn; events: StageEvents; stop(): void } {
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
          format: `${stage.padEnd(22)} [{bar}] {value}/{total} | {percentage}% | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
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
    stop,
  };
}
