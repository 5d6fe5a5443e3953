// Validates OpenRPC and AsyncAPI documents with the official tooling, as pinned in package-lock.json:
//
//   node tests/schemas/validate.mjs openrpc=FILE asyncapi=FILE ...
//
// An OpenRPC document is checked by @open-rpc/schema-utils-js against the OpenRPC meta-schema of its
// version, with the extensions it declares in `x-extensions` (birpc's `x-birpc-*`) applied, then parsed
// with every `$ref` dereferenced. An AsyncAPI document is parsed by @asyncapi/parser, which validates it
// against the AsyncAPI schema of its version and runs its Spectral rules: an error or a warning fails;
// information and hints are printed. tests/openrpc.rs runs it on the documents it writes.

import { readFileSync } from "node:fs";
import schemaUtils from "@open-rpc/schema-utils-js";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const { validateOpenRPCDocument, parseOpenRPCDocument } = schemaUtils;

async function checkOpenRPC(file) {
  const document = JSON.parse(readFileSync(file, "utf8"));
  const valid = validateOpenRPCDocument(document);
  if (valid !== true) {
    return [valid.message];
  }
  try {
    await parseOpenRPCDocument(document, { dereference: true, validate: true });
  } catch (error) {
    return [`parseOpenRPCDocument: ${error.message ?? error}`];
  }
  return [];
}

async function checkAsyncAPI(file) {
  const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"));
  const problems = [];
  for (const diagnostic of diagnostics) {
    const line = `${DiagnosticSeverity[diagnostic.severity]} ${diagnostic.code}: ${diagnostic.message} at /${diagnostic.path.join("/")}`;
    if (diagnostic.severity <= DiagnosticSeverity.Warning) {
      problems.push(line);
    } else {
      console.log(`  (${line})`);
    }
  }
  if (document === undefined && problems.length === 0) {
    problems.push("the parser gave no document");
  }
  return problems;
}

const checks = { openrpc: checkOpenRPC, asyncapi: checkAsyncAPI };
let failed = 0;
let passed = 0;
const args = process.argv.slice(2);
if (args.length === 0) {
  console.error("usage: node validate.mjs openrpc=FILE asyncapi=FILE ...");
  process.exit(2);
}
for (const arg of args) {
  const [kind, file] = arg.split(/=(.*)/s);
  const check = checks[kind];
  if (check === undefined || !file) {
    console.error(`not KIND=FILE with KIND openrpc or asyncapi: ${arg}`);
    process.exit(2);
  }
  const problems = await check(file);
  if (problems.length === 0) {
    passed += 1;
    console.log(`valid ${kind}: ${file}`);
  } else {
    failed += 1;
    console.log(`INVALID ${kind}: ${file}`);
    for (const problem of problems) {
      console.log(`  ${problem}`);
    }
  }
}
console.log(`${passed} valid, ${failed} invalid`);
process.exit(failed === 0 ? 0 : 1);
