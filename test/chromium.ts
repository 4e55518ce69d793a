/**
 * Headless Chromium (Debian's `chromium`) over the DevTools protocol on a pipe (--remote-debugging-pipe:
 * JSON messages ending in NUL on fds 3 and 4), with no npm dependency: open a page at a viewport width,
 * collect console errors and uncaught exceptions, evaluate expressions, take a full-page screenshot.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";

export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

export interface PageCheck {
  /** Console errors, uncaught exceptions and error log entries, in order. */
  errors: string[];
  /** Each expression's value (JSON-serialisable). */
  values: unknown[];
}

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
};

/**
 * Loads `url` at `width` x `height` CSS pixels, evaluates `expressions` once it has loaded, and writes a
 * full-page PNG to `screenshot` when given.
 */
export async function checkPage(
  url: string,
  options: { width: number; height?: number; expressions?: string[]; screenshot?: string },
): Promise<PageCheck> {
  if (!CHROMIUM) throw new Error("chromium is not installed (apt-get install -y chromium)");
  const profile = mkdtempSync(join(tmpdir(), "dno-chromium-"));
  const child: ChildProcess = spawn(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--hide-scrollbars",
      `--user-data-dir=${profile}`,
      "--remote-debugging-pipe",
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] },
  );
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: ((m: Message) => void)[] = [];
  let buffer = "";
  fromBrowser.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    let end = buffer.indexOf("\0");
    while (end >= 0) {
      const m = JSON.parse(buffer.slice(0, end)) as Message;
      buffer = buffer.slice(end + 1);
      end = buffer.indexOf("\0");
      if (m.id !== undefined && pending.has(m.id)) {
        const p = pending.get(m.id)!;
        pending.delete(m.id);
        if (m.error) p.reject(new Error(JSON.stringify(m.error)));
        else p.resolve(m.result);
      } else {
        for (const l of listeners) l(m);
      }
    }
  });
  const send = <T>(method: string, params: object = {}, sessionId?: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId && { sessionId }) })}\0`);
    });
  const errors: string[] = [];
  try {
    const { targetId } = await send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const s = <T>(method: string, params: object = {}) => send<T>(method, params, sessionId);
    listeners.push((m) => {
      const p = m.params ?? {};
      if (m.method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert")) {
        errors.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
      } else if (m.method === "Runtime.exceptionThrown") {
        errors.push(`exception: ${JSON.stringify(p.exceptionDetails)}`);
      } else if (m.method === "Log.entryAdded") {
        const entry = p.entry as { level: string; text: string; url?: string };
        if (entry.level === "error") errors.push(`log: ${entry.text} ${entry.url ?? ""}`);
      }
    });
    await s("Runtime.enable");
    await s("Log.enable");
    await s("Page.enable");
    const height = options.height ?? 900;
    await s("Emulation.setDeviceMetricsOverride", {
      width: options.width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    const loaded = new Promise<void>((resolve) =>
      listeners.push((m) => m.method === "Page.loadEventFired" && resolve()),
    );
    await s("Page.navigate", { url });
    await loaded;
    const values: unknown[] = [];
    for (const expression of options.expressions ?? []) {
      const r = await s<{ result: { value: unknown }; exceptionDetails?: unknown }>("Runtime.evaluate", {
        expression,
        returnByValue: true,
      });
      if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
      values.push(r.result.value);
    }
    if (options.screenshot) {
      const metrics = await s<{ cssContentSize: { height: number } }>("Page.getLayoutMetrics");
      const full = Math.ceil(metrics.cssContentSize.height);
      await s("Emulation.setDeviceMetricsOverride", {
        width: options.width,
        height: full,
        deviceScaleFactor: 1,
        mobile: false,
      });
      const shot = await s<{ data: string }>("Page.captureScreenshot", { format: "png" });
      writeFileSync(options.screenshot, Buffer.from(shot.data, "base64"));
    }
    return { errors, values };
  } finally {
    // Close politely and wait, so no helper process still writes into the profile when it is removed.
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await Promise.race([
      send("Browser.close").catch(() => undefined),
      delay(5000, undefined, { ref: false }),
    ]);
    await Promise.race([exited, delay(5000, undefined, { ref: false })]);
    child.kill("SIGKILL");
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}
