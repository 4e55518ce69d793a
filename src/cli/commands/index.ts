import type { Command } from "commander";
import { register as game } from "./game.js";

/** Each command module exports `register(program)`; one line here per command. */
export const commands: ((program: Command) => void)[] = [game];
