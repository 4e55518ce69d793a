/**
 * The demo's programmatic oracle, loaded by path from the demo's dno.yaml (`oracle.kind: programmatic`),
 * so a demo run directory resumes with a plain `dno run`.
 */
import { DEFAULT_TASK, demoPreference } from "./task.js";

export const prefer = demoPreference(DEFAULT_TASK);
