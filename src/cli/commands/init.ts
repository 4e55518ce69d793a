import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Command, Option } from "commander";
import { INIT_TASKS } from "../../init/tasks.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";

export function register(program: Command): void {
  const names = Object.keys(INIT_TASKS);
  program
    .command("init")
    .description("write a run folder to start from: a commented dno.yaml, prompt files, an oracle")
    .argument("[dir]", "where to write them", ".")
    .addOption(
      new Option(
        "--task <name>",
        `the starting point: ${names.map((n) => `${n} (${INIT_TASKS[n]!.description})`).join("; ")}`,
      )
        .choices(names)
        .default("demo"),
    )
    .option("--model <dir>", "the Hugging Face model directory to write into model.path (hf, chat)")
    .action((dir: string, flags: { task: string; model?: string }) => {
      const task = INIT_TASKS[flags.task]!;
      if (flags.model !== undefined && !existsSync(join(flags.model, "config.json"))) {
        throw new DnoError(
          `--model ${flags.model}: no config.json there (expected a Hugging Face model directory)`,
        );
      }
      const model = flags.model === undefined ? undefined : resolve(flags.model);
      const files = task.files(model);
      const existing = Object.keys(files).filter((f) => existsSync(join(dir, f)));
      if (existing.length > 0)
        throw new DnoError(`${resolve(dir)}: ${existing.join(", ")} already exist; nothing written`);
      mkdirSync(dir, { recursive: true });
      for (const [name, content] of Object.entries(files)) writeFileAtomic(join(dir, name), content);
      process.stdout.write(
        `wrote ${Object.keys(files).join(", ")} in ${resolve(dir)} (task ${flags.task})\n` +
          `${task.next(join(dir, "dno.yaml"), model)}\n`,
      );
    });
}
