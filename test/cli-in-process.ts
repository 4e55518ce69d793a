/** The CLI run in this process, as bin/dno.js runs it, for tests that need no child process. */
import { main } from "../src/cli/main.js";

/** Runs the CLI in this process (what bin/dno.js does), capturing its output and exit code. */
export async function dnoInProcess(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { write: stdoutWrite } = process.stdout;
  const { write: stderrWrite } = process.stderr;
  // The CLI writes strings; the test runner's own reports (serialized, in the same process) are
  // binary and pass through untouched.
  const capture = (into: string[], original: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk !== "string")
        return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      into.push(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture(out, stdoutWrite, process.stdout);
  process.stderr.write = capture(err, stderrWrite, process.stderr);
  let code: number;
  try {
    code = await main(["node", "dno", ...args]);
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
  }
  return { code, stdout: out.join(""), stderr: err.join("") };
}
