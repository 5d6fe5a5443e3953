// What the browser tests share: the web_chat server as a child process whose stdout lines can be awaited,
// a redis-server of the test's own for servers that share a hub, and Chromium launched the way this
// machine needs it.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

/** The repository's root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** How long to wait for anything the server or a page should do soon. */
export const PATIENCE_MS = 20_000;

/** Whether this runs on CI (`CI=true`), where nothing may be skipped. */
export const ON_CI = process.env.CI === "true";

/**
 * The web_chat binary: $BIRPC_WEB_CHAT, else built with cargo (with the redis feature, for `--redis`).
 * @returns {string}
 */
export function webChatBinary() {
  const given = process.env.BIRPC_WEB_CHAT;
  if (given) {
    if (!existsSync(given)) throw new Error(`BIRPC_WEB_CHAT=${given} does not exist`);
    return given;
  }
  const built = spawnSync("cargo", ["build", "--features", "redis", "--example", "web_chat"], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (built.status !== 0) throw new Error("cargo build --features redis --example web_chat failed");
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(ROOT, "target");
  return path.join(targetDir, "debug", "examples", "web_chat");
}

/**
 * Rejects after `ms` with a message saying what was awaited, unless `promise` settles first.
 * @template T
 * @param {string} what
 * @param {Promise<T>} promise
 * @param {number} [ms]
 * @returns {Promise<T>}
 */
export function within(what, promise, ms = PATIENCE_MS) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout])).finally(() => clearTimeout(timer));
}

/** The web_chat server, running. */
export class ChatServer {
  /** @type {import("node:child_process").ChildProcess} */
  #child;
  /** @type {string[]} */
  #lines = [];
  /** What it printed on stderr (echoed to this process's stderr too). @type {string[]} */
  #errors = [];
  /** @type {Array<{pattern: RegExp, from: number, resolve: (line: string) => void}>} */
  #waiters = [];
  /** @type {Promise<number | null>} */
  #exited;

  /**
   * @param {import("node:child_process").ChildProcess} child
   */
  constructor(child) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    const errors = readline.createInterface({ input: /** @type {import("node:stream").Readable} */ (child.stderr) });
    errors.on("line", (line) => {
      process.stderr.write(`  [web_chat] ${line}\n`);
      this.#errors.push(line);
    });
    const lines = readline.createInterface({ input: /** @type {import("node:stream").Readable} */ (child.stdout) });
    lines.on("line", (line) => {
      if (process.env.BIRPC_SHOW_SERVER) console.log(`  [web_chat] ${line}`);
      this.#lines.push(line);
      const index = this.#lines.length - 1;
      this.#waiters = this.#waiters.filter((waiter) => {
        if (index < waiter.from || !waiter.pattern.test(line)) return true;
        waiter.resolve(line);
        return false;
      });
    });
    /** @type {string} */
    this.url = "";
    /** @type {number} */
    this.port = 0;
  }

  /**
   * Starts the server listening on `listen` (with `args` after that) and waits for its first line,
   * `listening on http://HOST:PORT`.
   * @param {string} binary
   * @param {string} listen
   * @param {string[]} [args]
   * @returns {Promise<ChatServer>}
   */
  static async start(binary, listen, args = []) {
    const child = spawn(binary, ["--listen", listen, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const server = new ChatServer(child);
    const failed = new Promise((_, reject) => {
      child.once("error", reject);
      // Its stderr is read to the end before `close` (`exit` may come first).
      child.once("close", (code, signal) => {
        const said = server.#errors.join("\n");
        reject(new Error(`web_chat exited (${code ?? signal}) before listening${said ? `: ${said}` : ""}`));
      });
    });
    const first = await within(
      "the server's first line",
      Promise.race([server.nextLine(/^listening on /), failed]),
    );
    const match = /^listening on (http:\/\/[^/\s]+:(\d+))$/.exec(/** @type {string} */ (first));
    if (!match) throw new Error(`unexpected first line: ${first}`);
    server.url = `${match[1]}/`;
    server.port = Number(match[2]);
    return server;
  }

  /** The lines printed so far. */
  get lines() {
    return [...this.#lines];
  }

  /**
   * The next line matching `pattern` printed from now on, or from line `from`.
   * @param {RegExp} pattern
   * @param {number} [from] the index of the first line to consider (default: lines not printed yet)
   * @returns {Promise<string>}
   */
  nextLine(pattern, from = this.#lines.length) {
    const found = this.#lines.slice(from).find((line) => pattern.test(line));
    if (found !== undefined) return Promise.resolve(found);
    return within(
      `the server to print ${pattern}`,
      new Promise((resolve) => this.#waiters.push({ pattern, from, resolve })),
    );
  }

  /** Kills the server at once (no graceful shutdown: the pages' connections just drop) and waits for it. */
  async kill() {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
    await within("the server to exit", this.#exited);
  }
}

/**
 * A port of the loopback interface that was free a moment ago (the OS picked it), for a server that cannot
 * be told to pick one itself and say which.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * The redis-server to start: $BIRPC_REDIS_SERVER, else `redis-server` on the PATH (Debian's package),
 * or `null` where there is none.
 * @returns {string | null}
 */
export function redisServerBinary() {
  const binary = process.env.BIRPC_REDIS_SERVER || "redis-server";
  const probe = spawnSync(binary, ["--version"], { stdio: "ignore" });
  return probe.status === 0 ? binary : null;
}

/** A redis-server of the test's own on a free loopback port, without persistence. */
export class RedisServer {
  /** @type {import("node:child_process").ChildProcess} */
  #child;
  /** @type {Promise<void>} */
  #exited;

  /**
   * @param {import("node:child_process").ChildProcess} child
   * @param {number} port
   */
  constructor(child, port) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    this.port = port;
    this.url = `redis://127.0.0.1:${port}/`;
  }

  /**
   * Starts `binary` on a free port and waits until it says it accepts connections.
   * @param {string} binary
   * @returns {Promise<RedisServer>}
   */
  static async start(binary) {
    const port = await freePort();
    const child = spawn(
      binary,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const server = new RedisServer(child, port);
    const lines = readline.createInterface({ input: /** @type {import("node:stream").Readable} */ (child.stdout) });
    /** @type {string[]} */
    const said = [];
    const ready = new Promise((resolve, reject) => {
      lines.on("line", (line) => {
        if (process.env.BIRPC_SHOW_SERVER) console.log(`  [redis-server] ${line}`);
        said.push(line);
        if (/Ready to accept connections/.test(line)) resolve(undefined);
      });
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        reject(new Error(`redis-server exited (${code ?? signal}) before it was ready: ${said.join("\n")}`)),
      );
    });
    try {
      await within("redis-server to accept connections", ready);
    } catch (error) {
      await server.kill();
      throw error;
    }
    return server;
  }

  /** Kills it (everything it held is lost) and waits for it. */
  async kill() {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
    await within("redis-server to exit", this.#exited);
  }
}

/**
 * Launches Debian's Chromium (or $BIRPC_CHROMIUM) headless, with a fresh profile.
 * @returns {Promise<import("playwright-core").Browser>}
 */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.BIRPC_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // playwright gives every launch a fresh temporary --user-data-dir of its own.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: PATIENCE_MS,
  });
}
