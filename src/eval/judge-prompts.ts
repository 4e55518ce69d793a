import { DnoError } from "../util/errors.js";

/**
 * Benchmark judge prompts as FastChat and arena-hard-auto store them: a system prompt and a user
 * template with Python `str.format` placeholders (`{question}`, `{answer_1}`; `{{` and `}}` are
 * literal braces), so their own prompt files can be used unchanged.
 */
export interface JudgePrompt {
  name: string;
  system: string;
  template: string;
}

/** Python's `template.format(**values)` for plain `{name}` fields; an unknown field is an error. */
export function formatPython(template: string, values: Record<string, string>, where: string): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (match, name: string | undefined) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    const value = values[name!];
    if (value === undefined)
      throw new DnoError(
        `${where}: the template uses {${name}}, which is not one of ${Object.keys(values).join(", ")}`,
      );
    return value;
  });
}
