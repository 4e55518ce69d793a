import type { Command } from "commander";
import { runCompare, VARIANTS } from "../../demo/compare.js";
import { CHAIN_VARIANTS, runChainCompare } from "../../demo/compare-chain.js";
import { DnoError } from "../../util/errors.js";
import { stageProgress } from "../stage-progress.js";

export function register(program: Command): void {
  program
    .command("compare")
    .description("run the demo task under the paper's Table 1 variants; writes compare.md and compare.json")
    .option("--out <dir>", "where the variants' runs go (existing ones are resumed)", "dno-compare")
    .option(
      "--variants <names>",
      `comma-separated subset of: ${VARIANTS.map((v) => v.name).join(", ")} (reverse); ${CHAIN_VARIANTS.map((v) => v.name).join(", ")} (chain)`,
    )
    .option(
      "--task <name>",
      "reverse (the demo's Table 1 variants) or chain (MCTS-DPO vs DNO-Prct)",
      "reverse",
    )
    .action(async (flags: { out: string; variants?: string; task: string }) => {
      if (flags.task !== "reverse" && flags.task !== "chain") {
        throw new DnoError(`--task: unknown task "${flags.task}"; expected reverse or chain`);
      }
      const variants = flags.task === "chain" ? CHAIN_VARIANTS : VARIANTS;
      const names = flags.variants
        ? flags.variants.split(",").map((s) => s.trim())
        : variants.map((v) => v.name);
      const unknown = names.filter((n) => !variants.some((v) => v.name === n));
      if (unknown.length > 0) throw new DnoError(`--variants: unknown ${unknown.join(", ")}`);
      const ui = stageProgress();
      try {
        const { markdown } = await (flags.task === "chain" ? runChainCompare : runCompare)(flags.out, names, {
          progress: ui.progress,
          events: ui.events,
          announce: (v) => process.stderr.write(`== ${v.name}: ${v.description}\n`),
        });
        ui.stop();
        process.stdout.write(markdown);
      } finally {
        ui.stop();
      }
    });
}
