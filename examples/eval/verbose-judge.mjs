// A deliberately length-biased toy judge: P(a > b) rises with how much longer a is than b.
// It shows what the length-controlled win rate is for: this judge's wins are all length.
export function prefer(_prompt, a, b) {
  return 1 / (1 + Math.exp(-([...a].length - [...b].length) / 50));
}
