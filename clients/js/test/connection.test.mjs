// Closing, close codes, reconnecting and calls made while disconnected, against the Rust interop server
// (killed and restarted on the same port where needed).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";

import { Client, DisconnectedError, LimitExceededError, TimeoutError, connect } from "../birpc.js";
import { startServer } from "../test-support/server.mjs";

const LONG = 600_000;

/** A port nothing listens on. */
async function deadPort() {
  const listener = net.createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => listener.once("listening", resolve));
  const { port } = listener.address();
  await new Promise((resolve) => listener.close(resolve));
  return port;
}

/** Collects the events of a type. */
function record(client, type) {
  const events = [];
  client.on(type, (event) => events.push(event));
  return events;
}

/** Resolves once `count` events of a type have come (counting from now). */
function events(client, type, count) {
  return new Promise((resolve) => {
    const seen = [];
    const off = client.on(type, (event) => {
      seen.push(event);
      if (seen.length === count) {
        off();
        resolve(seen);
      }
    });
  });
}

describe("closing", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.kill());

  test("close() rejects pending calls at once with the page's code and reason", { timeout: 20_000 }, async () => {
    const c = await connect(server.url);
    const closes = record(c, "close");
    const pending = c.call("sleep", [LONG]);
    const closed = c.close(4001, "leaving");
    assert.equal(c.state, "closed");
    await assert.rejects(pending, (error) => {
      assert.ok(error instanceof DisconnectedError);
      assert.deepEqual([error.code, error.reason], [4001, "leaving"]);
      return true;
    });
    assert.deepEqual(
      closes.map(({ code, reason, willReconnect }) => ({ code, reason, willReconnect })),
      [{ code: 4001, reason: "leaving", willReconnect: false }],
    );
    // A closed client refuses calls at once, whatever whenDisconnected says.
    await assert.rejects(c.call("echo", [1]), { name: "DisconnectedError", code: 4001 });
    await closed;
    // connect() starts over.
    await c.connect();
    assert.equal(await c.call("echo", ["again"]), "again");
    await c.close();
  });

  test("close codes browsers refuse are refused", async () => {
    const c = await connect(server.url);
    assert.throws(() => c.close(1001), RangeError);
    assert.throws(() => c.close(1000, "x".repeat(124)), RangeError);
    assert.equal(c.state, "open");
    await c.close();
  });

  test("every close code a server may send reaches the page as sent, 1014 included", { timeout: 30_000 }, async () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]) {
      const c = await connect(server.url, { reconnect: false });
      const closed = events(c, "close", 1);
      // The answer (null) may come before the close frame or be cut off by it.
      await c.call("close", [code, `code ${code}`]).catch((error) => assert.equal(error.code, code));
      const [event] = await closed;
      assert.deepEqual([event.code, event.reason], [code, `code ${code}`]);
      await assert.rejects(c.call("echo", [1]), { name: "DisconnectedError", code });
    }
  });

  test("a message over maxMessageSize is refused without sending; the connection lives", async () => {
    const c = await connect(server.url, { reconnect: false });
    await assert.rejects(c.call("echo", ["x".repeat(5 * 1024 * 1024)]), (error) => {
      assert.ok(error instanceof LimitExceededError);
      assert.equal(error.limit, "maxMessageSize");
      assert.equal(error.max, 4 * 1024 * 1024);
      return true;
    });
    assert.equal(await c.call("echo", ["small"]), "small");
    await c.close();
  });
});

test("a server shutting down (1001) rejects pending calls with its code and reason", { timeout: 60_000 }, async () => {
  // The server drains before closing: it waits for its running handlers (up to a deadline, 10 s by
  // default) before it sends its close frame. The calls must be rejected by the time the close is told.
  const server = await startServer();
  try {
    const c = await connect(server.url, { reconnect: { shouldReconnect: (event) => event.code !== 1001 } });
    const pending = [c.call("sleep", [LONG]), c.call("sleep", [LONG])];
    const rejected = pending.map((call) =>
      call.then(
        () => assert.fail("answered"),
        (error) => error,
      ),
    );
    let settledAtClose = null;
    const closed = new Promise((resolve) =>
      c.on("disconnected", (event) => {
        // Rejections already made run before a microtask queued now.
        let settled = 0;
        for (const call of pending) call.catch(() => settled++);
        queueMicrotask(() => queueMicrotask(() => {
          settledAtClose = settled;
          resolve(event);
        }));
      }),
    );
    await c.call("echo", [1]); // the sleeps reached the server
    server.kill("SIGINT");
    const event = await closed;
    assert.equal(settledAtClose, 2);
    assert.deepEqual([event.code, event.reason, event.willReconnect], [1001, "server shutting down", false]);
    for (const error of await Promise.all(rejected)) {
      assert.ok(error instanceof DisconnectedError);
      assert.equal(error.code, 1001);
      assert.equal(error.reason, "server shutting down");
      assert.equal(error.wasClean, true);
    }
    assert.equal(c.state, "closed");
  } finally {
    await server.kill();
  }
});

test("reconnects with backoff to a server restarted on the same port", { timeout: 30_000 }, async () => {
  const first = await startServer();
  let second;
  try {
    const c = new Client(first.url, {
      reconnect: { initialDelay: 20, maxDelay: 160, factor: 2, jitter: 0.5 },
      methods: { who: () => "the page" },
    });
    await c.ready;
    assert.equal(await c.call("ask_client", ["who"]), "the page");
    const pending = c.call("sleep", [LONG]);
    // The call in flight is rejected, not sent again.
    const rejected = assert.rejects(pending, { name: "DisconnectedError", code: 1006 });
    await c.call("echo", [1]);
    const closed = c.once("close");
    const retries = events(c, "reconnecting", 4);

    await first.kill();
    await rejected;
    const close = await closed;
    assert.equal(close.code, 1006);
    assert.equal(close.willReconnect, true);

    // Retries fail while the server is down, further and further apart (within the jitter).
    const seen = await retries;
    assert.deepEqual(seen.map((e) => e.attempt), [1, 2, 3, 4]);
    const bases = [20, 40, 80, 160];
    seen.forEach((e, i) => assert.ok(e.delay >= bases[i] / 2 && e.delay <= bases[i], `delay ${e.delay}`));
    assert.notEqual(c.state, "open");

    // Made while disconnected: one waits for the connection, one fails at once.
    const waiting = c.call("echo", ["waited"]);
    await assert.rejects(c.call("echo", ["failed"], { whenDisconnected: "fail" }), (error) => {
      assert.ok(error instanceof DisconnectedError);
      assert.equal(error.code, 1006);
      return true;
    });

    const opened = c.once("open");
    second = await startServer(`127.0.0.1:${first.port}`);
    await opened;
    assert.equal(await waiting, "waited");
    // The page's methods are offered again on the new connection.
    assert.equal(await c.call("ask_client", ["who"]), "the page");
    assert.equal(await c.call("subtract", [5, 3]), 2);
    await c.close();
  } finally {
    await first.kill();
    await second?.kill();
  }
});

test("with reconnect off, a lost connection closes the client for good", { timeout: 20_000 }, async () => {
  const server = await startServer();
  try {
    const c = await connect(server.url, { reconnect: false });
    const closed = c.once("close");
    const reconnecting = record(c, "reconnecting");
    await server.kill();
    const event = await closed;
    assert.equal(event.willReconnect, false);
    assert.equal(c.state, "closed");
    assert.deepEqual(reconnecting, []);
    await assert.rejects(c.call("echo", [1]), DisconnectedError);
    await assert.rejects(c.ready, DisconnectedError);
  } finally {
    await server.kill();
  }
});

test("gives up after maxAttempts: waiting calls and ready are rejected", { timeout: 20_000 }, async () => {
  const port = await deadPort();
  const c = new Client(`ws://127.0.0.1:${port}/`, { reconnect: { initialDelay: 10, maxAttempts: 2 }, timeout: null });
  const reconnecting = record(c, "reconnecting");
  const closed = c.once("close");
  const waiting = c.call("echo", [1]);
  const ready = c.ready;
  await assert.rejects(waiting, { name: "DisconnectedError", code: 1006 });
  await assert.rejects(ready, DisconnectedError);
  const event = await closed;
  assert.equal(event.willReconnect, false);
  assert.deepEqual(reconnecting.map((e) => e.attempt), [1, 2]);
  assert.equal(c.state, "closed");
});

test("a call waiting for a connection times out", { timeout: 20_000 }, async () => {
  const port = await deadPort();
  const c = new Client(`ws://127.0.0.1:${port}/`, { reconnect: { initialDelay: 10, maxDelay: 50 } });
  await assert.rejects(c.call("echo", [1], { timeout: 200 }), TimeoutError);
  assert.equal(c.pendingCalls, 0);
  await c.close();
});

describe("before connecting", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.kill());

  test("calls wait for connect() by default", async () => {
    const c = new Client(server.url, { autoConnect: false });
    assert.equal(c.state, "idle");
    const waiting = c.call("echo", ["early"]);
    const note = c.notify("echo", ["early notification"]);
    assert.equal(c.pendingCalls, 1);
    assert.equal(c.state, "idle");
    await c.connect();
    assert.equal(await waiting, "early");
    await note;
    await c.close();
  });

  test("or fail at once with whenDisconnected: fail", async () => {
    const c = new Client(server.url, { autoConnect: false, whenDisconnected: "fail" });
    await assert.rejects(c.call("echo", [1]), { name: "DisconnectedError", code: 1006, reason: "not connected" });
    await assert.rejects(c.notify("echo", [1]), DisconnectedError);
    await c.connect();
    assert.equal(await c.call("echo", [2]), 2);
    await c.close();
  });

  test("the URL may be a function, asked at each attempt", async () => {
    let asked = 0;
    const c = await connect(() => {
      asked++;
      return new URL(server.url);
    });
    assert.equal(asked, 1);
    assert.equal(await c.call("echo", [3]), 3);
    await c.close();
  });
});
