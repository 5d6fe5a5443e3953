// Backpressure and limits: the client respects the socket's bufferedAmount and bounds what waits, with a
// fake WebSocket whose bufferedAmount the test controls.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Client, DisconnectedError, LimitExceededError, TimeoutError } from "../birpc.js";
import { fakeSockets } from "../test-support/sockets.mjs";

/** A client on an open fake socket. */
async function setup(t, options = {}) {
  const fake = fakeSockets();
  const client = new Client("ws://fake.test/", {
    WebSocket: fake.WebSocket,
    reconnect: false,
    pollInterval: 1,
    ...options,
  });
  const ws = await fake.nextSocket();
  ws.serverOpen();
  await client.ready;
  // Closed even when the test fails, so that no timer keeps the process alive.
  t.after(() => client.close());
  return { client, ws, fake };
}

/** Lets promise reactions already due run. */
async function settle() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

test("nothing is sent while bufferedAmount is above the high-water mark; then all of it, in order", async (t) => {
  const { client, ws } = await setup(t, { highWaterMark: 1000 });
  ws.bufferedAmount = 1001;
  const a = client.call("a", [1]);
  const b = client.notify("b", [2]);
  let bSent = false;
  b.then(() => (bSent = true));
  const c = client.batch((batch) => [batch.call("c")]);
  // An answer to the server waits as well, and goes first when the socket drains.
  client.expose("ping", () => "pong");
  ws.serverSend({ jsonrpc: "2.0", id: "p", method: "ping" });
  await settle();
  assert.equal(ws.sent.items.length, 0);
  assert.equal(bSent, false);
  assert.ok(client.queuedBytes > 0);
  assert.equal(client.pendingCalls, 2);

  ws.bufferedAmount = 1000; // at the mark: sending may go on
  assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: "p", result: "pong" });
  assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, method: "a", params: [1] });
  assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "b", params: [2] });
  assert.deepEqual(await ws.nextMessage(), [{ jsonrpc: "2.0", id: 2, method: "c" }]);
  await b;
  assert.equal(client.queuedBytes, 0);
  ws.serverSend([{ jsonrpc: "2.0", id: 1, result: "a" }, { jsonrpc: "2.0", id: 2, result: "c" }]);
  assert.equal(await a, "a");
  assert.deepEqual(await c, ["c"]);
});

test("a fast sender cannot grow memory without bound: the queue is bounded, the rest is refused", async (t) => {
  const { client, ws } = await setup(t, { highWaterMark: 200, maxQueuedBytes: 1000 });
  // The socket keeps what it is given, as a slow network would.
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    send(data);
    ws.bufferedAmount += data.length;
  };
  const results = [];
  for (let i = 0; i < 200; i++) results.push(client.notify("log", [`line ${i}`, "x".repeat(40)]));
  const outcomes = await Promise.allSettled(results.map((p) => Promise.race([p, settle().then(() => "waiting")])));
  const refused = outcomes.filter((o) => o.status === "rejected");
  const sent = ws.sent.items.length;
  const waiting = outcomes.filter((o) => o.value === "waiting").length;
  assert.ok(sent >= 1 && sent <= 4, `sent ${sent}`);
  assert.ok(ws.bufferedAmount <= 200 + 120, `bufferedAmount ${ws.bufferedAmount}`);
  assert.ok(client.queuedBytes <= 1000, `queued ${client.queuedBytes}`);
  assert.ok(waiting >= 5 && waiting <= 12, `waiting ${waiting}`);
  assert.equal(sent + waiting + refused.length, 200);
  for (const { reason } of refused) {
    assert.ok(reason instanceof LimitExceededError);
    assert.equal(reason.limit, "maxQueuedBytes");
    assert.equal(reason.max, 1000);
  }
  // A call is refused the same way, at once.
  await assert.rejects(client.call("more", ["x".repeat(100)]), { name: "LimitExceededError", limit: "maxQueuedBytes" });

  // The network catches up: everything accepted goes out, in order.
  const drained = (async () => {
    for (;;) {
      const frame = JSON.parse(await ws.sent.next());
      ws.bufferedAmount = 0;
      if (frame.params[0] === `line ${sent + waiting - 1}`) return frame;
    }
  })();
  ws.bufferedAmount = 0;
  const last = await drained;
  const lines = ws.sent.items.map((text) => JSON.parse(text).params[0]);
  assert.deepEqual(lines, Array.from({ length: sent + waiting }, (_, i) => `line ${i}`));
  assert.equal(last.params[0], `line ${sent + waiting - 1}`);
  await Promise.all(results.slice(0, sent + waiting));
  assert.equal(client.queuedBytes, 0);
});

test("one message larger than maxQueuedBytes may wait alone", async (t) => {
  const { client, ws } = await setup(t, { highWaterMark: 0, maxQueuedBytes: 10 });
  ws.bufferedAmount = 1;
  const big = client.notify("big", ["x".repeat(100)]);
  await assert.rejects(client.notify("next", []), LimitExceededError);
  ws.bufferedAmount = 0;
  await big;
  assert.equal(JSON.parse(await ws.sent.next()).method, "big");
});

test("a queued call that times out or is aborted is never sent, and no $/cancelRequest either", async (t) => {
  const { client, ws } = await setup(t, { highWaterMark: 10 });
  ws.bufferedAmount = 11;
  const controller = new AbortController();
  const timedOut = client.call("timed", [], { timeout: 20 });
  const aborted = client.call("aborted", [], { signal: controller.signal });
  const kept = client.call("kept", []);
  controller.abort();
  await assert.rejects(aborted, { name: "AbortError" });
  await assert.rejects(timedOut, TimeoutError);
  assert.equal(client.pendingCalls, 1);
  ws.bufferedAmount = 0;
  assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, method: "kept", params: [] });
  ws.serverSend({ jsonrpc: "2.0", id: 1, result: "ok" });
  assert.equal(await kept, "ok");
  assert.deepEqual(ws.sent.unread, []);
  assert.equal(ws.sent.items.length, 1);
});

test("maxPendingCalls refuses further calls at once, until answers make room", async (t) => {
  const { client, ws } = await setup(t, { maxPendingCalls: 2 });
  const first = client.call("one");
  const second = client.batch((b) => [b.call("two")]);
  await assert.rejects(client.call("three"), (error) => {
    assert.ok(error instanceof LimitExceededError);
    assert.equal(error.limit, "maxPendingCalls");
    assert.equal(error.max, 2);
    return true;
  });
  await assert.rejects(client.batch((b) => [b.call("x"), b.call("y")]), { limit: "maxPendingCalls" });
  // Notifications are not calls: they pass.
  await client.notify("note");
  assert.equal(client.pendingCalls, 2);
  await ws.nextMessage();
  await ws.nextMessage();
  ws.serverSend({ jsonrpc: "2.0", id: 1, result: 1 });
  assert.equal(await first, 1);
  const third = client.call("three");
  ws.serverSend({ jsonrpc: "2.0", id: 2, result: 2 });
  ws.serverSend({ jsonrpc: "2.0", id: 3, result: 3 });
  assert.deepEqual(await second, [2]);
  assert.equal(await third, 3);
});

test("when the connection drops, calls in flight are rejected and queued ones wait for the next", async () => {
  const fake = fakeSockets();
  const client = new Client("ws://fake.test/", {
    WebSocket: fake.WebSocket,
    reconnect: { initialDelay: 1, jitter: 0 },
    highWaterMark: 100,
    pollInterval: 1,
  });
  const first = await fake.nextSocket();
  first.serverOpen();
  const inFlight = client.call("sent");
  assert.equal((await first.nextMessage()).method, "sent");
  first.bufferedAmount = 101;
  const queued = client.call("queued");
  const failing = client.call("not waiting", [], { whenDisconnected: "fail" });
  first.serverClose(1001, "going away", true);
  await assert.rejects(inFlight, (error) => error instanceof DisconnectedError && error.code === 1001);
  await assert.rejects(failing, { name: "DisconnectedError", code: 1001 });
  const second = await fake.nextSocket();
  second.serverOpen();
  assert.deepEqual(await second.nextMessage(), { jsonrpc: "2.0", id: 1, method: "queued" });
  second.serverSend({ jsonrpc: "2.0", id: 1, result: "delivered" });
  assert.equal(await queued, "delivered");
  assert.equal(second.sent.items.length, 1);
  await client.close();
});
