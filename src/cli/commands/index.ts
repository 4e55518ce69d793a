import type { Command } from "commander";
import { register as registerEval } from "./eval.js";
import { register as exportModel } from "./export.js";
import { register as game } from "./game.js";
import { register as generate } from "./generate.js";
import { register as judge } from "./judge.js";
import { register as logprobs } from "./logprobs.js";

/** Each command module exports `register(program)`; one line here per command. */
export const commands: ((program: Command) => void)[] = [
  registerEval,
  game,
  judge,
  generate,
  exportModel,
  logprobs,
];
