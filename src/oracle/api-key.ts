import { DnoError } from "../util/errors.js";

/**
 * The API key, read from the environment variable the config names and held in memory only: it is
 * never part of a config hash, a cache row, an output line or a message (see `redact`).
 */
export function readApiKey(envName: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (envName === undefined) return undefined;
  const key = env[envName];
  if (key === undefined || key === "") {
    throw new DnoError(`apiKeyEnv: environment variable ${envName} is not set (it should hold the API key)`);
  }
  return key;
}

/** Removes the key from text that may echo it (servers sometimes quote a rejected key). */
export function redact(text: string, key: string | undefined): string {
  return key && key.length >= 4 ? text.split(key).join("***") : text;
}
