// Timeouts and AbortSignal cancellation in both directions, against the Rust interop server.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { ErrorCode, TimeoutError, connect } from "../birpc.js";
import { startServer } from "../test-support/server.mjs";
import { gate, spySockets } from "../test-support/sockets.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** A connected client whose frames are recorded, closed after the test. */
async function client(t, options = {}) {
  const spy = spySockets();
  const c = await connect(server.url, { reconnect: false, WebSocket: spy.WebSocket, ...options });
  t.after(() => c.close());
  return { c, spy };
}

const LONG = 600_000; // ten minutes: a call of sleep(LONG) that is not withdrawn makes the test time out

test("a call times out quickly, the server is told, and the connection goes on", { timeout: 20_000 }, async (t) => {
  const { c, spy } = await client(t);
  const started = performance.now();
  await assert.rejects(c.call("sleep", [LONG], { timeout: 150 }), (error) => {
    assert.ok(error instanceof TimeoutError);
    assert.equal(error.method, "sleep");
    assert.equal(error.timeout, 150);
    return true;
  });
  assert.ok(performance.now() - started < 5_000);
  const sleep = await spy.sent.find((m) => m.method === "sleep");
  const cancel = await spy.sent.find((m) => m.method === "$/cancelRequest");
  assert.deepEqual(cancel, { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: sleep.id } });
  assert.equal("id" in cancel, false);
  // The server stopped the handler and answered -32800, an answer the client drops.
  const answer = await spy.received.find((m) => m.id === sleep.id);
  assert.equal(answer.error.code, ErrorCode.REQUEST_CANCELLED);
  assert.equal(c.pendingCalls, 0);
  assert.equal(await c.call("echo", ["still here"]), "still here");
});

test("the client's default timeout applies, and null means none", { timeout: 20_000 }, async (t) => {
  const { c } = await client(t, { timeout: 100 });
  await assert.rejects(c.call("sleep", [LONG]), TimeoutError);
  assert.equal(await c.call("sleep", [300], { timeout: null }), 300);
});

test("an AbortSignal withdraws a call in flight", { timeout: 20_000 }, async (t) => {
  const { c, spy } = await client(t);
  const controller = new AbortController();
  const call = c.call("sleep", [LONG], { signal: controller.signal });
  const sleep = await spy.sent.find((m) => m.method === "sleep");
  const reason = new Error("the user went elsewhere");
  controller.abort(reason);
  await assert.rejects(call, (error) => error === reason);
  const cancel = await spy.sent.find((m) => m.method === "$/cancelRequest");
  assert.deepEqual(cancel.params, { id: sleep.id });
  const answer = await spy.received.find((m) => m.id === sleep.id);
  assert.equal(answer.error.code, ErrorCode.REQUEST_CANCELLED);
  assert.deepEqual(await c.call("get_data"), ["hello", 5]);
});

test("the default abort reason is an AbortError", { timeout: 20_000 }, async (t) => {
  const { c } = await client(t);
  const controller = new AbortController();
  const call = c.call("sleep", [LONG], { signal: controller.signal });
  controller.abort();
  await assert.rejects(call, { name: "AbortError" });
  await assert.rejects(c.call("sleep", [LONG], { signal: AbortSignal.timeout(50) }), { name: "TimeoutError" });
});

test("an already aborted signal sends nothing", async (t) => {
  const { c, spy } = await client(t);
  await assert.rejects(c.call("echo", [1], { signal: AbortSignal.abort() }), { name: "AbortError" });
  assert.equal(await c.call("echo", [2]), 2);
  assert.deepEqual(spy.sent.items.map((m) => m.params), [[2]]);
});

test("a batch is withdrawn whole: one cancellation per unanswered call", { timeout: 20_000 }, async (t) => {
  const { c, spy } = await client(t);
  let quick;
  const batch = c.batch(
    (b) => {
      quick = b.call("echo", ["quick"]);
      return [b.call("sleep", [LONG]), b.call("sleep", [LONG])];
    },
    { timeout: 300 },
  );
  await assert.rejects(batch, TimeoutError);
  // The server answers a batch in one message, once every entry is done: none of it was answered.
  await assert.rejects(quick, TimeoutError);
  const frame = await spy.sent.find(Array.isArray);
  const ids = frame.map((m) => m.id);
  const cancels = await spy.sent.find((m) => Array.isArray(m) && m[0].method === "$/cancelRequest");
  assert.deepEqual(cancels.map((m) => m.params.id).sort(), ids.sort());
  // (The Rust server does not cancel the entries of a batch yet: it answers the batch when its sleeps end,
  // so there is no answer to wait for here.)
  assert.equal(await c.call("echo", ["after"]), "after");
});

test("when the server withdraws a call of the page, the handler's signal is aborted", { timeout: 20_000 }, async (t) => {
  // The page withdraws ask_client; the server then withdraws its own call of the page's method.
  const started = gate();
  const aborted = gate();
  const { c, spy } = await client(t, {
    methods: {
      slow: (params, { signal }) => {
        started.open();
        return new Promise((_, reject) => {
          signal.addEventListener("abort", () => {
            aborted.open(signal.reason);
            reject(signal.reason);
          });
        });
      },
    },
  });
  const controller = new AbortController();
  const call = c.call("ask_client", ["slow"], { signal: controller.signal });
  await started.promise;
  controller.abort();
  await assert.rejects(call, { name: "AbortError" });
  const reason = await aborted.promise;
  assert.equal(reason.code, ErrorCode.REQUEST_CANCELLED);
  // The page answered the withdrawn request with -32800.
  const request = await spy.received.find((m) => m.method === "slow");
  const answer = await spy.sent.find((m) => m.id === request.id && "error" in m);
  assert.deepEqual(answer.error, { code: -32800, message: "Request cancelled" });
  assert.equal(await c.call("echo", ["on"]), "on");
});

test("options are checked", async (t) => {
  const { c } = await client(t);
  await assert.rejects(c.call("echo", [1], { timeout: -5 }), RangeError);
  await assert.rejects(c.call("echo", [1], { whenDisconnected: "maybe" }), TypeError);
  assert.equal(c.pendingCalls, 0);
});
