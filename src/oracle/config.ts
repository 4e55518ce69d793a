import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { DnoError } from "../util/errors.js";
import { readYamlFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";
import type { Link } from "./adapters.js";
import { readApiKey } from "./api-key.js";
import { canonicalJson, sha256Hex } from "./cache.js";
import { ensembleOracle } from "./ensemble.js";
import { llmJudgeOracle } from "./llm-judge.js";
import { loadProgrammaticModule, programmaticOracle } from "./programmatic.js";
import type { ReliabilityOptions } from "./reliability.js";
import { rewardModelOracle } from "./reward-model.js";
import { loadTemplate } from "./templates.js";
import type { Oracle } from "./types.js";

const linkSchema = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("sigmoid"), scale: z.number().positive().max(1e6).default(1) }),
    z.strictObject({ kind: z.literal("step") }),
  ])
  .default({ kind: "sigmoid", scale: 1 });

export const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name");

/** Oracles are reached over HTTP(S) only: file:, data: or other schemes are refused at validation. */
const httpUrl = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" });

/** Knobs of how calls are made; none of them changes an answer, so none is in the config hash. */
export const reliabilityFields = {
  /** SQLite file of paid judgments; relative to the config file. Omitted: kept in memory only. */
  cache: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).default(4),
  timeoutMs: z.number().int().positive().max(86_400_000).default(120_000),
  maxRetries: z.number().int().min(0).max(100).default(5),
  retryBaseMs: z.number().int().min(0).max(3_600_000).default(1000),
  retryMaxMs: z.number().int().min(0).max(86_400_000).default(60_000),
  budget: z
    .strictObject({
      maxCalls: z.number().int().positive().max(1e12).optional(),
      maxTokens: z.number().int().positive().max(1e15).optional(),
    })
    .default({}),
};

export const llmJudgeConfigSchema = z.strictObject({
  kind: z.literal("llm-judge"),
  mode: z.enum(["pointwise", "pairwise"]).default("pointwise"),
  baseUrl: httpUrl,
  model: z.string().min(1),
  /** Name of the environment variable holding the API key (never the key itself). */
  apiKeyEnv: envName.optional(),
  temperature: z.number().min(0).max(2).default(0),
  maxTokens: z
    .number()
    .int()
    .positive()
    .max(1 << 20)
    .default(2048),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  system: z.string().optional(),
  /** Jinja template files (relative to the config file); the defaults are `defaultTemplates`. */
  templates: z
    .strictObject({ pointwise: z.string().optional(), pairwise: z.string().optional() })
    .default({}),
  link: linkSchema,
  ...reliabilityFields,
});

export const rewardModelConfigSchema = z.strictObject({
  kind: z.literal("reward-model"),
  url: httpUrl,
  model: z.string().min(1).optional(),
  apiKeyEnv: envName.optional(),
  link: linkSchema,
  ...reliabilityFields,
});

export const programmaticConfigSchema = z.strictObject({
  kind: z.literal("programmatic"),
  /** A .js/.mjs module (relative to the config file) exporting prefer and/or score. */
  module: z.string().min(1),
  export: z.string().min(1).optional(),
  link: linkSchema,
});

/** An oracle that judges on its own (not an ensemble): what an ensemble is made of. */
export const memberConfigSchema = z.discriminatedUnion("kind", [
  llmJudgeConfigSchema,
  rewardModelConfigSchema,
  programmaticConfigSchema,
]);

export const ensembleConfigSchema = z
  .strictObject({
    kind: z.literal("ensemble"),
    members: z.array(memberConfigSchema).min(1),
    /** mean; min (worst case); uncertainty (mean - lambda * variance across members). */
    aggregate: z.enum(["mean", "min", "uncertainty"]).default("mean"),
    lambda: z.number().min(0).max(1e6).default(1),
    /** Members that must answer a judgment for it to count; default: all. */
    minMembers: z.number().int().positive().max(1024).optional(),
    link: linkSchema,
  })
  .refine((c) => (c.minMembers ?? 1) <= c.members.length, {
    message: "minMembers cannot exceed the number of members",
    path: ["minMembers"],
  });

export const oracleConfigSchema = z.discriminatedUnion("kind", [
  llmJudgeConfigSchema,
  rewardModelConfigSchema,
  programmaticConfigSchema,
  ensembleConfigSchema,
]);

export type OracleConfig = z.infer<typeof oracleConfigSchema>;
export type MemberConfig = z.infer<typeof memberConfigSchema>;
export type OracleConfigInput = z.input<typeof oracleConfigSchema>;

/** Validates a config object; errors name the field path, prefixed with `where` (a file, a section). */
export function parseOracleConfig(value: unknown, where: string): OracleConfig {
  const parsed = oracleConfigSchema.safeParse(value);
  if (!parsed.success) throw new DnoError(`${where}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/** The settings in a YAML (or JSON) oracle config file, not yet validated (flags may be laid over them). */
export function readOracleConfigFile(file: string): Record<string, unknown> {
  const value = readYamlFile(file);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new DnoError(
      `${file}: expected a mapping of the oracle's settings (kind: llm-judge | reward-model | programmatic | ensemble)`,
    );
  }
  return value as Record<string, unknown>;
}

/** Reads and validates a YAML (or JSON) oracle config file. */
export function loadOracleConfigFile(file: string): OracleConfig {
  return parseOracleConfig(readOracleConfigFile(file), file);
}

export interface CreateOracleOptions {
  /** Relative paths in the config (cache, templates, module) resolve against this; default: cwd. */
  baseDir?: string;
  /** Where API keys are read from; default: process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The config's directory, for `CreateOracleOptions.baseDir`. */
export function configBaseDir(configFile: string): string {
  return dirname(resolve(configFile));
}

function reliabilityOf(config: Extract<OracleConfig, { cache?: string }>): ReliabilityOptions {
  return {
    concurrency: config.concurrency,
    timeoutMs: config.timeoutMs,
    maxRetries: config.maxRetries,
    retryBaseMs: config.retryBaseMs,
    retryMaxMs: config.retryMaxMs,
    budget: config.budget,
  };
}

/** The one way to build an oracle from a config (`dno judge`, the pipeline's `oracle:`, evaluation). */
export async function createOracle(config: OracleConfig, options: CreateOracleOptions = {}): Promise<Oracle> {
  const baseDir = options.baseDir ?? process.cwd();
  const env = options.env ?? process.env;
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const link: Link = config.link;
  switch (config.kind) {
    case "ensemble": {
      const members = await Promise.all(config.members.map((m) => createOracle(m, options)));
      return ensembleOracle(members, {
        aggregate: config.aggregate,
        lambda: config.lambda,
        ...(config.minMembers !== undefined && { minMembers: config.minMembers }),
        link,
      });
    }
    case "programmatic":
      return programmaticOracle(await loadProgrammaticModule(at(config.module), config.export), link);
    case "reward-model": {
      const apiKey = readApiKey(config.apiKeyEnv, env);
      const hashed = { kind: config.kind, url: config.url, model: config.model ?? null };
      return rewardModelOracle({
        url: config.url,
        model: config.model,
        apiKey,
        apiKeyEnv: config.apiKeyEnv,
        link,
        reliability: reliabilityOf(config),
        cachePath: config.cache ? at(config.cache) : ":memory:",
        configHash: sha256Hex(canonicalJson(hashed)),
      });
    }
    case "llm-judge": {
      const apiKey = readApiKey(config.apiKeyEnv, env);
      const templates = {
        pointwise: loadTemplate("pointwise", config.templates.pointwise && at(config.templates.pointwise)),
        pairwise: loadTemplate("pairwise", config.templates.pairwise && at(config.templates.pairwise)),
      };
      // Everything that can change an answer, and nothing else (no key, no reliability knobs).
      const hashed = {
        kind: config.kind,
        baseUrl: config.baseUrl,
        model: config.model,
        temperature: config.temperature,
        maxTokens: config.maxTokens,
        seed: config.seed,
        system: config.system ?? null,
        pointwise: templates.pointwise.source,
        pairwise: templates.pairwise.source,
      };
      return llmJudgeOracle({
        mode: config.mode,
        baseUrl: config.baseUrl,
        model: config.model,
        apiKey,
        apiKeyEnv: config.apiKeyEnv,
        temperature: config.temperature,
        maxTokens: config.maxTokens,
        seed: config.seed,
        system: config.system,
        templates,
        link,
        reliability: reliabilityOf(config),
        cachePath: config.cache ? at(config.cache) : ":memory:",
        configHash: sha256Hex(canonicalJson(hashed)),
      });
    }
  }
}
