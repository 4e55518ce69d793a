import type { Command } from "commander";
import {
  alpacaMetrics,
  isExtremeLengthCorrection,
  readAlpacaAnnotations,
  readInstructionDifficulty,
} from "../../eval/alpaca.js";
import { DnoError } from "../../util/errors.js";

interface EvalOptions {
  alpacaAnnotations?: string;
  instructionDifficulty?: string;
  json?: boolean;
}

/** A number for people: fixed decimals, "n/a" where undefined (NaN, null). */
function show(value: number | null, digits = 2): string {
  return value === null || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

/** JSON has no NaN: undefined statistics (a standard error of one record) become null. */
function jsonNumbers(object: Record<string, number | null>): Record<string, number | null> {
  return Object.fromEntries(
    Object.entries(object).map(([k, v]) => [k, v === null || !Number.isFinite(v) ? null : v]),
  );
}

function evalAlpaca(file: string, options: EvalOptions): void {
  const records = readAlpacaAnnotations(file);
  const instructionDifficulty = options.instructionDifficulty
    ? readInstructionDifficulty(options.instructionDifficulty, records.length)
    : undefined;
  const { metrics, lengthControl } = alpacaMetrics(
    records,
    instructionDifficulty ? { instructionDifficulty } : {},
  );
  if (options.json) {
    process.stdout.write(`${JSON.stringify(jsonNumbers({ ...metrics }))}\n`);
    return;
  }
  const lines = [
    `${file}: ${records.length} records, ${metrics.n_total} judged`,
    `length_controlled_winrate  ${show(metrics.length_controlled_winrate)}`,
    `win_rate                   ${show(metrics.win_rate)}`,
    `standard_error             ${show(metrics.standard_error)}`,
    `discrete_win_rate          ${show(metrics.discrete_win_rate)}`,
    `n_wins                     ${metrics.n_wins}`,
    `n_wins_base                ${metrics.n_wins_base}`,
    `n_draws                    ${metrics.n_draws}`,
    `n_total                    ${metrics.n_total}`,
    `avg_length                 ${metrics.avg_length}`,
  ];
  if (lengthControl === "baseline-is-model")
    lines.push("length control: the model is its own baseline, LC = 50");
  else if (lengthControl === null) lines.push("length control: needs at least 2 judged records");
  else {
    const c = lengthControl.coefficients;
    lines.push(
      `length control GLM (C = ${lengthControl.C.toPrecision(3)}): ` +
        `w_length ${c.length.toFixed(4)}, ` +
        (c.difficulty === null
          ? "no instruction difficulty, "
          : `w_difficulty ${c.difficulty.toFixed(4)}, `) +
        `w_model ${c.model.toFixed(4)}`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  const lc = metrics.length_controlled_winrate;
  if (lc !== null && isExtremeLengthCorrection(metrics.win_rate, lc))
    process.stderr.write(
      `dno: warning: the length-controlled win rate (${show(lc)}) is far from the raw one (${show(metrics.win_rate)}); ` +
        `with ${metrics.n_total} judgments the GLM may be unreliable\n`,
    );
}

export function register(program: Command): void {
  program
    .command("eval")
    .description("win rate with standard error and length-controlled win rate (AlpacaEval 2.0)")
    .option(
      "--alpaca-annotations <file>",
      "AlpacaEval annotations.json (output_1 = baseline, output_2 = model)",
    )
    .option(
      "--instruction-difficulty <csv>",
      "AlpacaEval instruction_difficulty.csv (index,instruction_difficulty) for the LC fit",
    )
    .option("--json", "print one JSON object")
    .action((options: EvalOptions) => {
      if (options.alpacaAnnotations) return evalAlpaca(options.alpacaAnnotations, options);
      throw new DnoError("dno eval: give --alpaca-annotations FILE");
    });
}
