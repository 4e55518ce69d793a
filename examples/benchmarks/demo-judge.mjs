// A programmatic judge for dno's demo task ("rev abcd=" is answered "dcba", brackets optional) that
// answers dno's default MT-Bench and Arena-Hard judge prompts the way an LLM judge would, in words
// ending with "[[rating]]" or a verdict label. It mirrors the demo oracle: a correct answer beats a
// wrong one, a bracketed correct answer beats a plain one.

const block = (text, name) => new RegExp(`<${name}>\\n([\\s\\S]*?)\\n</${name}>`).exec(text)?.[1];

/** 2 = correct and bracketed, 1 = correct and plain, 0 = wrong. */
function grade(question, answer) {
  const word = /rev ([a-z]+)=/.exec(question ?? "")?.[1];
  const m = /^\s*([[({]?)([a-z]+)([\])}]?)\s*$/.exec(answer ?? "");
  if (!word || !m || m[2] !== [...word].reverse().join("")) return 0;
  return m[1] ? 2 : 1;
}

export function judge(_system, messages) {
  const text = messages[0].content;
  const a = block(text, "answer_a");
  const b = block(text, "answer_b");
  if (a !== undefined && b !== undefined) {
    const question = block(text, "user_prompt");
    const d = grade(question, a) - grade(question, b);
    const label = d >= 2 ? "A>>B" : d === 1 ? "A>B" : d === 0 ? "A=B" : d === -1 ? "B>A" : "B>>A";
    return `Checked both reversals. My final verdict: [[${label}]]`;
  }
  const turn2 = block(text, "turn_2_answer");
  const question = turn2 !== undefined ? block(text, "turn_2_question") : block(text, "question");
  const answer = turn2 ?? block(text, "answer");
  const rating = [2, 7, 9][grade(question, answer)];
  return `The reversal is ${rating > 2 ? "right" : "wrong"}. Rating: [[${rating}]]`;
}
