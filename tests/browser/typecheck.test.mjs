// The page's script type-checks against the generated bindings (chat.d.ts) and the client's declarations
// (clients/js/birpc.d.ts): tsc --noEmit with examples/web_chat/static/tsconfig.json (strict, checkJs).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TSC = path.join(ROOT, "tests", "browser", "node_modules", ".bin", "tsc");
const TSCONFIG = path.join(ROOT, "examples", "web_chat", "static", "tsconfig.json");

test("the page's app.js passes tsc --noEmit --strict", { timeout: 120_000 }, () => {
  assert.ok(existsSync(TSC), `no ${TSC}: run npm ci --prefix tests/browser`);
  const run = spawnSync(TSC, ["--noEmit", "--strict", "-p", TSCONFIG, "--listFilesOnly"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  // The page, the generated bindings and the client's own declarations are what is checked.
  const files = run.stdout.split("\n").map((file) => path.relative(ROOT, file));
  for (const file of [
    "examples/web_chat/static/app.js",
    "examples/web_chat/static/chat.d.ts",
    "examples/web_chat/static/birpc.d.ts",
    "clients/js/birpc.d.ts",
  ]) {
    assert.ok(files.includes(file), `tsc does not read ${file}: ${files.join(", ")}`);
  }

  const check = spawnSync(TSC, ["--noEmit", "--strict", "-p", TSCONFIG], { cwd: ROOT, encoding: "utf8" });
  assert.equal(check.status, 0, `tsc found errors:\n${check.stdout}${check.stderr}`);
});
