import { Template } from "@huggingface/jinja";
import { DnoError } from "../util/errors.js";
import { readTextFile } from "../util/files.js";

/**
 * The default judge prompts (jinja). Copy one to a file, edit it, and name it in the config
 * (`templates.pointwise` / `templates.pairwise`); `dno judge --write-templates DIR` writes these.
 *
 * Pointwise variables: `prompt`, `candidates` (a list of `{ id, text }`, ids "1".."K" in the shuffled
 * order shown), `min_score`, `max_score`. The answer must be one JSON object mapping every id to
 * `{ "justification": string, "score": integer }`.
 * Pairwise variables: `prompt`, `response_a`, `response_b`. The answer must end with [[A]], [[B]] or
 * [[C]] (tie); AlpacaEval-style answers ("Output (a)", a model_1/model_2 ranking, m/M) are read too.
 */
export const defaultTemplates = {
  pointwise: `Review the user's question and the candidate responses below, and score each response on the additive 6-point scale that follows. Judge each response on its own merits; the order of the responses is random and means nothing.

Points accumulate:
- Add 1 point if the response is formatted as an answer to the question, even if it is incomplete or partly off-topic.
- Add a 2nd point if it addresses a substantial part of the question, even if it does not resolve it fully.
- Add a 3rd point if it answers the basic elements of the question in a useful way, despite minor errors or omissions.
- Add a 4th point if it answers the question directly and comprehensively, is well organized, and reads as a helpful assistant's answer.
- Add a 5th point if it is entirely correct, with no factual, logical or reasoning errors.
- Add a 6th point if, on top of that, it is concise and expert-level: focused, with nothing extraneous, showing deep knowledge.

<question>
{{ prompt }}
</question>
{% for c in candidates %}
<response id="{{ c.id }}">
{{ c.text }}
</response>
{% endfor %}
Answer with one JSON object and nothing else. Map every response id to a brief justification and its total score, an integer from {{ min_score }} to {{ max_score }}, for example:
{"1": {"justification": "...", "score": 4}, "2": {"justification": "...", "score": 6}}
`,
  pairwise: `Compare the two AI assistant responses to the user's question below and decide which is better. Weigh helpfulness, correctness, depth and clarity. Do not let the order of the responses, their length or any names influence you.

<question>
{{ prompt }}
</question>

<response_a>
{{ response_a }}
</response_a>

<response_b>
{{ response_b }}
</response_b>

Explain your comparison briefly, then give your verdict on the last line, exactly one of: [[A]] if response A is better, [[B]] if response B is better, [[C]] for a tie.
`,
} as const;

export type TemplateName = keyof typeof defaultTemplates;

/** A parsed prompt template; `source` is what the config hash covers. */
export interface PromptTemplate {
  source: string;
  render(vars: Record<string, unknown>): string;
}

export function compileTemplate(source: string, where: string): PromptTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new DnoError(`${where}: invalid jinja template: ${(e as Error).message}`);
  }
  return {
    source,
    render(vars) {
      try {
        return template.render(vars);
      } catch (e) {
        throw new DnoError(`${where}: cannot render the template: ${(e as Error).message}`);
      }
    },
  };
}

/** The template in `file`, or the default when no file is given. */
export function loadTemplate(name: TemplateName, file: string | undefined): PromptTemplate {
  if (file === undefined) return compileTemplate(defaultTemplates[name], `default ${name} template`);
  return compileTemplate(readTextFile(file), file);
}
