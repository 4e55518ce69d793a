/**
 * The demo's offline preference data (pipeline option pairs.offline_data, DICE's first round and its
 * experience replay): for each word, two answers the teacher could have written, labelled once by
 * the demo's oracle as a human rater would, chosen = a with probability P(a > b).
 */
import { Rng } from "../core/rng.js";
import { type DemoTaskOptions, demoPreference, promptOf, teacherAnswer } from "./task.js";

export interface OfflinePreference {
  id: string;
  prompt: string;
  chosen: string;
  rejected: string;
}

export function offlinePreferences(
  words: readonly string[],
  seed: number,
  task: DemoTaskOptions,
): OfflinePreference[] {
  const prefer = demoPreference(task);
  const out: OfflinePreference[] = [];
  words.forEach((w, i) => {
    const prompt = promptOf(w);
    const a = teacherAnswer(w, seed, task, 1);
    const b = teacherAnswer(w, seed, task, 2);
    if (a === b) return;
    const aWins = Rng.derive(seed, "offline-label", w).float() < prefer(prompt, a, b);
    out.push({ id: `pref-${i}`, prompt, chosen: aWins ? a : b, rejected: aWins ? b : a });
  });
  return out;
}
