/** Public surface of the oracle module. */
export {
  defaultLink,
  type Link,
  linkPreference,
  makeOracle,
  pairwiseWinRates,
  type WinRateMatrix,
  winRateEstimates,
  winRatesFromScores,
} from "./adapters.js";
export { JudgmentCache } from "./cache.js";
export {
  type CreateOracleOptions,
  configBaseDir,
  createOracle,
  loadOracleConfigFile,
  type MemberConfig,
  memberConfigSchema,
  type OracleConfig,
  type OracleConfigInput,
  oracleConfigSchema,
  parseOracleConfig,
  readOracleConfigFile,
} from "./config.js";
export { type Aggregate, aggregatePreferences, aggregateScores, ensembleOracle } from "./ensemble.js";
export { type ProgrammaticFunctions, programmaticOracle } from "./programmatic.js";
export { compileTemplate, defaultTemplates, loadTemplate, type PromptTemplate } from "./templates.js";
export type {
  JudgeMessage,
  Oracle,
  OracleMode,
  OracleUsage,
  PreferenceOracle,
  PreferenceResult,
  ScoreResult,
  ScoringOracle,
  TextJudgment,
} from "./types.js";
export { parsePointwiseAnswer } from "./verdicts.js";
