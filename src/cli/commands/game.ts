import { type Command, Option } from "commander";
import { BUILTIN_GAMES, builtinGame } from "../../game/builtins.js";
import { DEFAULT_GAME_OPTIONS, GAME_MODES, type GameRunOptions, runGame } from "../../game/dynamics.js";
import { loadGame } from "../../game/game.js";
import { formatGameRun, gamePlotSpec } from "../../game/report.js";
import { vegaLiteToSvg } from "../../report/svg.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { intFlag, MAX_SEED, numberFlag } from "../flags.js";

/** The run's options as flags, plus where the game comes from and how to show the result. */
interface GameFlags extends GameRunOptions {
  builtin?: string;
  game?: string;
  json?: boolean;
  plot?: string;
  every?: number;
}

export function register(program: Command): void {
  const d = DEFAULT_GAME_OPTIONS;
  program
    .command("game")
    .description("DNO on a finite preference game: convergence to the Nash equilibrium, against baselines")
    .addOption(
      new Option("--builtin <name>", "a built-in game (default rps)")
        .choices(Object.keys(BUILTIN_GAMES))
        .conflicts("game"),
    )
    .option("--game <file.json>", "a game in the JSON format of the README")
    .addOption(new Option("--mode <mode>", "method").choices(GAME_MODES).default(d.mode))
    .option("--iterations <T>", "iterations", intFlag("--iterations", 1, 100_000), d.iterations)
    .option(
      "--beta <beta>",
      "log-ratio coefficient (Algorithm 1's eta); each step is r_t / beta",
      numberFlag("--beta", 0, 1e6, { exclusiveMin: true }),
      d.beta,
    )
    .option(
      "--tau <tau>",
      "exact mode: regularisation toward pi_1 (Nash-MD mixture), 0 <= tau <= beta",
      numberFlag("--tau", 0, 1e6),
      d.tau,
    )
    .option(
      "--samples <K>",
      "sampled modes: samples of pi_t per prompt and iteration",
      intFlag("--samples", 1, 1_000_000),
      d.samples,
    )
    .option(
      "--steps <n>",
      "sampled modes: Adam steps per iteration",
      intFlag("--steps", 1, 1_000_000),
      d.steps,
    )
    .option(
      "--lr <lr>",
      "sampled modes: Adam learning rate",
      numberFlag("--lr", 0, 10, { exclusiveMin: true }),
      d.lr,
    )
    .option(
      "--margin <m>",
      "prct: required win-rate margin of a pair",
      numberFlag("--margin", 0, 1),
      d.margin,
    )
    .option("--seed <seed>", "seed of the sampled modes", intFlag("--seed", 0, MAX_SEED), d.seed)
    .option(
      "--every <n>",
      "table: show every n-th iteration (default 1-5, 10, 20, 50, ...)",
      intFlag("--every", 1, 1_000_000),
    )
    .option("--json", "print one JSON object instead of the table")
    .option("--plot <file.svg>", "write an SVG plot of exploitability per iteration")
    .action(async (flags: GameFlags) => {
      const game = flags.game !== undefined ? loadGame(flags.game) : builtinGame(flags.builtin ?? "rps");
      const run = runGame(game, {
        mode: flags.mode,
        iterations: flags.iterations,
        beta: flags.beta,
        tau: flags.tau,
        samples: flags.samples,
        steps: flags.steps,
        lr: flags.lr,
        margin: flags.margin,
        seed: flags.seed,
      });
      if (flags.plot !== undefined) {
        const svg = await vegaLiteToSvg(gamePlotSpec(run));
        writeFileAtomic(flags.plot, svg);
      }
      process.stdout.write(
        flags.json ? `${JSON.stringify(run, null, 2)}\n` : formatGameRun(run, flags.every),
      );
      if (flags.plot !== undefined && !flags.json) process.stdout.write(`plot: ${flags.plot}\n`);
    });
}
