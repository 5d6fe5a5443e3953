// Starts the Rust interoperability server (examples/interop_server.rs) as a subprocess for the tests.
//
// The binary is $BIRPC_INTEROP_SERVER when set; otherwise `cargo build --example interop_server` is run in
// the repository and target/debug/examples/interop_server is used.

import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import path from "node:path";

const repository = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

let binary = null;

/** The path of the interop server binary, built if needed (once per test process). */
export function serverBinary() {
  if (binary) return binary;
  if (process.env.BIRPC_INTEROP_SERVER) {
    binary = process.env.BIRPC_INTEROP_SERVER;
    return binary;
  }
  try {
    execFileSync("cargo", ["build", "--quiet", "--example", "interop_server"], {
      cwd: repository,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    throw new Error(`cargo build --example interop_server failed:\n${error.stderr ?? error.message}`);
  }
  binary = path.join(repository, "target", "debug", "examples", "interop_server");
  return binary;
}

const running = new Set();
const killAll = () => {
  for (const child of running) child.kill("SIGKILL");
};
process.on("exit", killAll);
// The test runner stops a file that hangs with a signal: no server is left behind then either.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    killAll();
    process.exit(signal === "SIGTERM" ? 143 : 130);
  });
}

/**
 * Starts a server listening on `listen` (default: any free port of 127.0.0.1) and resolves once it prints
 * its address.
 * @returns {Promise<{url: string, port: number, child: import("node:child_process").ChildProcess,
 *   exited: Promise<unknown>, kill: (signal?: NodeJS.Signals) => Promise<unknown>}>}
 */
export async function startServer(listen = "127.0.0.1:0") {
  const child = spawn(serverBinary(), ["--listen", listen], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const exited = once(child, "exit").then((result) => {
    running.delete(child);
    return result;
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: child.stdout });
  const first = once(lines, "line").then(([line]) => line);
  const line = await Promise.race([
    first,
    exited.then(([code, signal]) => {
      throw new Error(`the interop server exited (${code ?? signal}) before listening: ${stderr}`);
    }),
  ]);
  const match = /^listening on (ws:\/\/[^\s]+:(\d+))$/.exec(line);
  if (!match) throw new Error(`unexpected first line from the interop server: ${line}`);
  return {
    url: match[1],
    port: Number(match[2]),
    child,
    exited,
    /** Sends a signal (SIGKILL by default; SIGINT shuts down with close code 1001) and waits for the exit. */
    kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
