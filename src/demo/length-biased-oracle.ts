/**
 * A length-biased judge for the demo (the second member of `dno compare`'s ensemble row): it prefers
 * the longer answer, P(a > b) = sigma(|a| - |b|) in characters, whatever the answers say. Brackets
 * make an answer 2 characters longer, so it favours every bracket over plain and sees no cycle.
 */
import { sigmoid } from "../core/prob.js";

export const prefer = (_prompt: string, a: string, b: string): number =>
  sigmoid([...a].length - [...b].length);
