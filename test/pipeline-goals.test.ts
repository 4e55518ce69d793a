import assert from "node:assert/strict";
import { test } from "node:test";
import { byteTokenizer } from "../src/model/tokenizer.js";
import { parseRunConfig, type RunConfigInput } from "../src/pipeline/config.js";
import { generationPrompt, pairPrompt } from "../src/pipeline/goals.js";
import { encodePromptText } from "../src/pipeline/policy.js";

const config = (extra: Partial<RunConfigInput>) =>
  parseRunConfig(
    {
      model: {
        from_scratch: {
          hidden_size: 32,
          intermediate_size: 64,
          num_hidden_layers: 1,
          num_attention_heads: 2,
        },
      },
      data: { prompts: "p.jsonl", eval: "e.jsonl" },
      oracle: { kind: "programmatic", module: "o.mjs" },
      ...extra,
    },
    "dno.yaml",
  );
const system = config({ pairs: { reward_augmented: { conditioning: "system" } } });
const CHAT =
  "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

/** The text a prompt's ids spell (the byte tokenizer's BOS shown as <bos>). */
function rendered(prompt: Parameters<typeof encodePromptText>[1], chatTemplate?: string): string {
  const tokenizer = byteTokenizer(chatTemplate === undefined ? {} : { chatTemplate });
  return encodePromptText({ tokenizer }, prompt)
    .map((id) => (id === tokenizer.bosTokenId ? "<bos>" : String.fromCharCode(id)))
    .join("");
}

test("system conditioning: the goal is a system message, rendered by the chat template", () => {
  const prompt = pairPrompt(system, "rev abc=", 0.7);
  assert.deepEqual(prompt, { user: "rev abc=", system: "Answer at quality 0.7." });
  assert.equal(rendered(prompt, CHAT), "<system>Answer at quality 0.7.\n<user>rev abc=\n<assistant>");
  // Without a chat template the messages are joined by newlines, after the tokenizer's BOS.
  assert.equal(rendered(prompt), "<bos>Answer at quality 0.7.\nrev abc=");
  // The score rule's goals are integers on the 6-point scale; a template of one's own.
  const scored = config({
    pairs: { rule: "score", reward_augmented: { conditioning: "system", template: "Rated {goal} of 6." } },
  });
  assert.equal(
    rendered(generationPrompt(scored, 2)("Hi"), CHAT),
    "<system>Rated 6 of 6.\n<user>Hi\n<assistant>",
  );
});

test("prefix conditioning writes the goal into the user message; no goal, no conditioning", () => {
  const prefix = config({ pairs: { reward_augmented: {} } });
  assert.equal(rendered(pairPrompt(prefix, "rev abc=", 1), CHAT), "<user><goal 1.0> rev abc=\n<assistant>");
  assert.deepEqual(pairPrompt(prefix, "rev abc=", undefined), { user: "rev abc=" });
  assert.deepEqual(pairPrompt(config({}), "rev abc=", 1), { user: "rev abc=" });
});

test("generation asks for the highest goal once the policy has been trained on goals", () => {
  assert.deepEqual(generationPrompt(system, 1)("x"), { user: "x" });
  assert.deepEqual(generationPrompt(system, 2)("x"), { user: "x", system: "Answer at quality 1.0." });
  const taught = config({
    pairs: { reward_augmented: { conditioning: "system", highest_goal: 0.9 } },
    sft: { data: "s.jsonl", lr: 0.001, goal_conditioned: true },
  });
  assert.deepEqual(generationPrompt(taught, 1)("x"), { user: "x", system: "Answer at quality 0.9." });
  assert.deepEqual(generationPrompt(config({}), 3)("x"), { user: "x" });
});
