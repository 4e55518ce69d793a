import type { Command } from "commander";

/** Each command module exports `register(program)`; one line here per command. */
export const commands: ((program: Command) => void)[] = [];
