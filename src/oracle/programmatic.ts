import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { DnoError } from "../util/errors.js";
import { defaultLink, type Link, makeOracle } from "./adapters.js";
import {
  emptyUsage,
  type JudgeMessage,
  type Oracle,
  type PreferenceResult,
  type ScoreResult,
  type TextJudgment,
} from "./types.js";

/**
 * What a programmatic oracle module exports (named, or as its default export): `prefer` returning
 * P(a > b | prompt) in [0, 1], and/or `score` returning one finite number per candidate, and/or
 * `judge` answering a benchmark's judge prompt (system prompt and messages) with text, as an LLM would.
 */
export interface ProgrammaticFunctions {
  prefer?: (prompt: string, a: string, b: string) => number | Promise<number>;
  score?: (prompt: string, candidates: readonly string[]) => readonly number[] | Promise<readonly number[]>;
  judge?: (system: string, messages: readonly JudgeMessage[]) => string | Promise<string>;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * An oracle from plain functions. A function that throws or returns something out of contract gives a
 * failed judgment with the reason, never a label. When both are given, `score` is native.
 */
export function programmaticOracle(fns: ProgrammaticFunctions, link: Link = defaultLink): Oracle {
  const usage = emptyUsage();
  const fail = (reason: string) => {
    usage.failures++;
    return reason;
  };
  const score = fns.score
    ? async (prompt: string, candidates: readonly string[]): Promise<ScoreResult> => {
        usage.calls++;
        const none = candidates.map(() => null);
        let out: readonly number[];
        try {
          out = await fns.score!(prompt, candidates);
        } catch (e) {
          return { scores: none, failed: fail(`score() threw: ${errorText(e)}`) };
        }
        if (!Array.isArray(out) || out.length !== candidates.length) {
          return { scores: none, failed: fail(`score() must return ${candidates.length} numbers`) };
        }
        const bad = out.findIndex((s) => typeof s !== "number" || !Number.isFinite(s));
        if (bad >= 0) return { scores: none, failed: fail(`score() returned ${String(out[bad])} at ${bad}`) };
        return { scores: [...out] };
      }
    : undefined;
  const compare = fns.prefer
    ? async (prompt: string, a: string, b: string): Promise<PreferenceResult> => {
        usage.calls++;
        let p: number;
        try {
          p = await fns.prefer!(prompt, a, b);
        } catch (e) {
          return { preference: null, failed: fail(`prefer() threw: ${errorText(e)}`) };
        }
        if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
          return {
            preference: null,
            failed: fail(`prefer() returned ${String(p)}, expected a number in [0, 1]`),
          };
        }
        return { preference: p };
      }
    : undefined;
  const ask = fns.judge
    ? async (system: string, messages: readonly JudgeMessage[]): Promise<TextJudgment> => {
        usage.calls++;
        let text: string;
        try {
          text = await fns.judge!(system, messages);
        } catch (e) {
          return { text: null, failed: fail(`judge() threw: ${errorText(e)}`) };
        }
        if (typeof text !== "string") return { text: null, failed: fail("judge() must return a string") };
        return { text };
      }
    : undefined;
  if (!score && !compare && !ask)
    throw new DnoError("a programmatic oracle needs a prefer, a score or a judge function");
  // A judge-only module answers benchmark prompts; asked for a preference, it says it cannot.
  const unable = async (): Promise<PreferenceResult> => ({
    preference: null,
    failed: fail("the programmatic module exports only judge(), no prefer() or score()"),
  });
  return makeOracle({
    ...(score && { score }),
    ...(compare ? { compare } : !score && { compare: unable }),
    ...(ask && { ask }),
    link,
    usage: () => ({ ...usage }),
  });
}

/**
 * Imports a user's module (`.js`/`.mjs`; `.ts` where Node strips types) and returns its functions.
 * `exportName` picks a named export holding { prefer, score }; otherwise the module's own named
 * exports, then its default export.
 */
export async function loadProgrammaticModule(
  path: string,
  exportName?: string,
): Promise<ProgrammaticFunctions> {
  const file = resolve(path);
  if (!existsSync(file)) throw new DnoError(`${path}: programmatic oracle module not found`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const hint = /\.[cm]?ts$/.test(file) ? " (on this Node, compile TypeScript to .js first)" : "";
    throw new DnoError(`${path}: cannot import the programmatic oracle module: ${errorText(e)}${hint}`);
  }
  const candidates: unknown[] = exportName ? [mod[exportName]] : [mod, mod.default];
  for (const c of candidates) {
    if (c === null || (typeof c !== "object" && typeof c !== "function")) continue;
    const { prefer, score, judge } = c as Record<string, unknown>;
    if (typeof prefer === "function" || typeof score === "function" || typeof judge === "function") {
      return {
        ...(typeof prefer === "function" && { prefer: prefer as ProgrammaticFunctions["prefer"] }),
        ...(typeof score === "function" && { score: score as ProgrammaticFunctions["score"] }),
        ...(typeof judge === "function" && { judge: judge as ProgrammaticFunctions["judge"] }),
      };
    }
  }
  const where = exportName ? `export "${exportName}"` : "module";
  throw new DnoError(
    `${path}: the ${where} must export a prefer(prompt, a, b), score(prompt, candidates) or judge(system, messages) function`,
  );
}
