/** `npm run docs:config`: rewrites README.md's config reference from the schema (src/docs/config-reference.ts). */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { withConfigReference } from "./config-reference.js";

const readme = fileURLToPath(new URL("../../../README.md", import.meta.url));
const before = readFileSync(readme, "utf8");
const after = withConfigReference(before);
writeFileSync(readme, after);
process.stdout.write(`${readme}: config reference ${before === after ? "already current" : "rewritten"}\n`);
