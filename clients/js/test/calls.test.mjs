// Calls, notifications and batches in both directions, against the Rust interop server.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { Client, ErrorCode, RpcError, connect } from "../birpc.js";
import { startServer } from "../test-support/server.mjs";
import { gate, spySockets } from "../test-support/sockets.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** A connected client, closed after the test. */
async function client(t, options = {}) {
  const c = await connect(server.url, { reconnect: false, ...options });
  t.after(() => c.close());
  return c;
}

describe("calls to the server", () => {
  test("params by position and by name", async (t) => {
    const c = await client(t);
    assert.equal(await c.call("subtract", [42, 23]), 19);
    assert.equal(await c.call("subtract", [23, 42]), -19);
    assert.equal(await c.call("subtract", { subtrahend: 23, minuend: 42 }), 19);
    assert.equal(await c.call("sum", [1, 2, 4]), 7);
    assert.equal(await c.call("sum", { a: 1, b: 2, c: 4 }), 7);
    assert.deepEqual(await c.call("get_data"), ["hello", 5]);
    assert.deepEqual(await c.call("get_data", []), ["hello", 5]);
  });

  test("values travel unchanged", async (t) => {
    const c = await client(t);
    const value = { text: "héllo \u{1F600} \"quoted\"\n", list: [1, 2.5, -3e-7, null, true], nested: { a: {} } };
    assert.deepEqual(await c.call("echo", [value]), value);
    assert.deepEqual(await c.call("echo", { value: [] }), []);
    assert.equal(await c.call("echo", [null]), null);
  });

  test("many calls in flight at once are answered out of order and matched", async (t) => {
    const c = await client(t);
    const slow = c.call("sleep", [200]);
    const fast = Array.from({ length: 50 }, (_, i) => c.call("echo", [i]));
    assert.deepEqual(await Promise.all(fast), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(await slow, 200);
  });

  test("the server's errors reject with RpcError carrying code, message and data", async (t) => {
    const c = await client(t);
    await assert.rejects(c.call("no_such_method", []), (error) => {
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, ErrorCode.METHOD_NOT_FOUND);
      assert.equal(error.message, "Method not found");
      return true;
    });
    await assert.rejects(c.call("subtract", ["a", 1]), (error) => {
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, ErrorCode.INVALID_PARAMS);
      assert.equal(typeof error.data, "string");
      return true;
    });
    await assert.rejects(c.call("subtract", { minuend: 1 }), { code: ErrorCode.INVALID_PARAMS });
  });

  test("params that are neither an array nor an object are refused before sending", async (t) => {
    const c = await client(t);
    await assert.rejects(c.call("echo", "text"), TypeError);
    await assert.rejects(c.call("echo", 5), TypeError);
    await assert.rejects(c.call("echo", null), TypeError);
    assert.equal(c.pendingCalls, 0);
  });

  test("params that cannot be encoded reject the call", async (t) => {
    const c = await client(t);
    await assert.rejects(c.call("echo", [10n]), TypeError);
    assert.equal(await c.call("echo", [1]), 1);
  });
});

describe("a busy server", () => {
  test("past its running and waiting bounds a call is refused with BUSY and a retry hint", async (t) => {
    // The Rust server runs 256 requests and holds 768 waiting; a client allowed more in flight than that
    // gets the rest refused at once, without their handlers running.
    const c = await client(t, { maxPendingCalls: 1100 });
    const controller = new AbortController();
    const calls = Array.from({ length: 1100 }, () =>
      c.call("sleep", [60_000], { signal: controller.signal, timeout: null }).then(
        () => "answered",
        (error) => error,
      ),
    );
    const busy = [];
    await new Promise((resolve) => {
      for (const call of calls) {
        call.then((outcome) => {
          if (outcome instanceof RpcError && outcome.code === ErrorCode.BUSY) {
            busy.push(outcome);
            if (busy.length === 1100 - 1024) resolve();
          }
        });
      }
    });
    for (const error of busy) {
      assert.equal(error.message, "Busy");
      assert.ok(Number.isInteger(error.data.retry_after_ms) && error.data.retry_after_ms > 0, JSON.stringify(error.data));
    }
    // The others wait or run; withdrawn, each is settled by the abort.
    controller.abort();
    const outcomes = await Promise.all(calls);
    assert.equal(outcomes.filter((o) => o instanceof RpcError && o.code === ErrorCode.BUSY).length, 1100 - 1024);
    assert.equal(outcomes.filter((o) => o === "answered").length, 0);
  });
});

describe("notifications", () => {
  test("a notification gets no answer, and reaches the server", async (t) => {
    const spy = spySockets();
    const heard = gate();
    const c = await client(t, { WebSocket: spy.WebSocket, methods: { heard: (params) => heard.open(params) } });
    // As a notification, notify_client runs on the server and notifies the page back.
    await c.notify("notify_client", ["heard", ["from a notification"]]);
    assert.deepEqual(await heard.promise, ["from a notification"]);
    const sent = await spy.sent.find((m) => m.method === "notify_client");
    assert.equal("id" in sent, false);
    // The server answered nothing to it: the next answer is the next call's.
    assert.equal(await c.call("echo", ["next"]), "next");
    assert.deepEqual(spy.received.items.filter((m) => !("method" in m)).map((m) => m.result), ["next"]);
  });

  test("notifications from the server run in order, by position or by name", async (t) => {
    const seen = [];
    const done = gate();
    const c = await client(t, {
      methods: {
        tick: async (params) => {
          seen.push(params);
          if (seen.length === 3) done.open();
        },
      },
    });
    assert.equal(await c.call("notify_client", ["tick", [1]]), null);
    assert.equal(await c.call("notify_client", { method: "tick", params: { n: 2 } }), null);
    assert.equal(await c.call("notify_client", ["tick"]), null);
    await done.promise;
    assert.deepEqual(seen, [[1], { n: 2 }, undefined]);
  });
});

describe("batches", () => {
  test("answers come back matched to their calls", async (t) => {
    const spy = spySockets();
    const c = await client(t, { WebSocket: spy.WebSocket });
    const [difference, sum, data, echoed] = await c.batch((b) => [
      b.call("subtract", [42, 23]),
      b.call("sum", { a: 1, b: 2, c: 3 }),
      b.call("get_data"),
      b.call("echo", ["x"]),
    ]);
    assert.deepEqual([difference, sum, data, echoed], [19, 6, ["hello", 5], "x"]);
    const frame = await spy.sent.find(Array.isArray);
    assert.equal(frame.length, 4);
    assert.deepEqual(new Set(frame.map((m) => m.id)).size, 4);
    const answer = await spy.received.find(Array.isArray);
    assert.equal(answer.length, 4);
  });

  test("an entry's error rejects that entry only", async (t) => {
    const c = await client(t);
    let missing;
    let ok;
    const all = c.batch((b) => {
      missing = b.call("no_such_method", []);
      ok = b.call("echo", ["fine"]);
      b.notify("echo", ["ignored"]);
    });
    assert.equal(await all, undefined);
    assert.equal(await ok, "fine");
    await assert.rejects(missing, { name: "RpcError", code: ErrorCode.METHOD_NOT_FOUND });
    // Returned together, the first error rejects the whole, as with Promise.all.
    await assert.rejects(
      c.batch((b) => [b.call("echo", [1]), b.call("subtract", [1])]),
      { code: ErrorCode.INVALID_PARAMS },
    );
  });

  test("a batch of notifications only gets no answer", async (t) => {
    const spy = spySockets();
    const heard = [];
    const both = gate();
    const c = await client(t, {
      WebSocket: spy.WebSocket,
      methods: {
        heard: (params) => {
          heard.push(params[0]);
          if (heard.length === 2) both.open();
        },
      },
    });
    const result = await c.batch((b) => {
      b.notify("notify_client", ["heard", ["one"]]);
      b.notify("notify_client", ["heard", ["two"]]);
      return "sent";
    });
    assert.equal(result, "sent");
    await both.promise;
    assert.deepEqual(heard.sort(), ["one", "two"]);
    assert.equal(await c.call("echo", ["after"]), "after");
    assert.equal(spy.received.items.filter(Array.isArray).length, 0);
  });

  test("an empty batch sends nothing", async (t) => {
    const spy = spySockets();
    const c = await client(t, { WebSocket: spy.WebSocket });
    assert.deepEqual(await c.batch(() => []), []);
    assert.equal(await c.call("echo", [1]), 1);
    assert.equal(spy.sent.items.length, 1);
  });
});

describe("calls from the server", () => {
  test("sync and async handlers answer values, by position and by name", async (t) => {
    const c = await client(t, {
      methods: {
        add: ([a, b]) => a + b,
        greet: async ({ name }, context) => {
          assert.equal(context.notification, false);
          assert.equal(context.method, "greet");
          assert.ok(context.signal instanceof AbortSignal);
          assert.equal(context.client, c);
          await null;
          return `hello ${name}`;
        },
        nothing: () => undefined,
      },
    });
    assert.equal(await c.call("ask_client", ["add", [2, 3]]), 5);
    assert.equal(await c.call("ask_client", { method: "greet", params: { name: "ada" } }), "hello ada");
    assert.equal(await c.call("ask_client", ["nothing"]), null);
  });

  test("a thrown RpcError reaches the caller unchanged: code, message and data", async (t) => {
    const data = { kind: "EmptyMessage", detail: [1, "two", { three: 3 }] };
    const c = await client(t, {
      methods: {
        refuse: () => {
          throw new RpcError(4242, "nope", data);
        },
        refuseLater: async () => {
          await null;
          throw new RpcError(-32000, "later");
        },
      },
    });
    await assert.rejects(c.call("ask_client", ["refuse", []]), (error) => {
      assert.ok(error instanceof RpcError);
      assert.deepEqual([error.code, error.message, error.data], [4242, "nope", data]);
      return true;
    });
    await assert.rejects(c.call("ask_client", ["refuseLater"]), (error) => {
      assert.deepEqual([error.code, error.message, error.data], [-32000, "later", undefined]);
      return true;
    });
  });

  test("any other exception answers -32603 and is reported", async (t) => {
    const c = await client(t, {
      methods: {
        crash: () => {
          throw new Error("kaboom");
        },
      },
    });
    const reported = c.once("error");
    await assert.rejects(c.call("ask_client", ["crash"]), { name: "RpcError", code: ErrorCode.INTERNAL_ERROR });
    const event = await reported;
    assert.equal(event.method, "crash");
    assert.equal(event.error.message, "kaboom");
  });

  test("an unknown method answers -32601; expose and unexpose change that", async (t) => {
    const c = await client(t);
    await assert.rejects(c.call("ask_client", ["later"]), { code: ErrorCode.METHOD_NOT_FOUND });
    c.expose("later", () => "here now");
    assert.equal(await c.call("ask_client", ["later"]), "here now");
    assert.equal(c.unexpose("later"), true);
    await assert.rejects(c.call("ask_client", ["later"]), { code: ErrorCode.METHOD_NOT_FOUND });
  });

  test("a handler can call the server back before answering", async (t) => {
    const c = await client(t, {
      methods: {
        double_remote: async ([n], { client }) => (await client.call("sum", [n, n, 0])) * 1,
        deeper: async ([n], { client }) => (n === 0 ? "bottom" : client.call("ask_client", ["deeper", [n - 1]])),
      },
    });
    assert.equal(await c.call("ask_client", ["double_remote", [21]]), 42);
    assert.equal(await c.call("ask_client", ["deeper", [3]]), "bottom");
  });

  test("requests of the server are handled concurrently", async (t) => {
    const first = gate();
    const c = await client(t, {
      methods: {
        wait: () => first.promise.then(() => "released"),
        release: () => {
          first.open();
          return "released the first";
        },
      },
    });
    const waiting = c.call("ask_client", ["wait"]);
    // The second request is handled while the first still waits: it is what releases it.
    assert.equal(await c.call("ask_client", ["release"]), "released the first");
    assert.equal(await waiting, "released");
  });
});

test("a Client constructed directly connects on its own", async (t) => {
  const c = new Client(server.url, { reconnect: false });
  t.after(() => c.close());
  assert.equal(c.state, "connecting");
  const opened = c.once("connected");
  await c.ready;
  await opened;
  assert.equal(c.state, "open");
  assert.equal(c.connected, true);
});
