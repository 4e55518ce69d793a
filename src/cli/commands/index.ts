import type { Command } from "commander";
import { register as compare } from "./compare.js";
import { register as demo } from "./demo.js";
import { register as registerEval } from "./eval.js";
import { register as exportModel } from "./export.js";
import { register as game } from "./game.js";
import { register as generate } from "./generate.js";
import { register as init } from "./init.js";
import { register as judge } from "./judge.js";
import { register as logprobs } from "./logprobs.js";
import { register as report } from "./report.js";
import { register as run } from "./run.js";
import { register as serve } from "./serve.js";
import { register as status } from "./status.js";
import { register as train } from "./train.js";

/** Each command module exports `register(program)`; one line here per command. */
export const commands: ((program: Command) => void)[] = [
  registerEval,
  game,
  judge,
  generate,
  exportModel,
  init,
  run,
  status,
  report,
  demo,
  compare,
  logprobs,
  train,
  serve,
];
