// The wire protocol, message by message, with a fake WebSocket driven by the test.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CANCEL_METHOD,
  Client,
  DisconnectedError,
  ErrorCode,
  ProtocolError,
  RpcError,
  scanRawIds,
} from "../birpc.js";
import { fakeSockets, gate } from "../test-support/sockets.mjs";

/** A client on an open fake socket. */
async function setup(t, options = {}) {
  const fake = fakeSockets();
  const client = new Client("ws://fake.test/rpc", { WebSocket: fake.WebSocket, reconnect: false, ...options });
  const ws = await fake.nextSocket();
  ws.serverOpen();
  await client.ready;
  // Closed even when the test fails, so that no timer keeps the process alive.
  t.after(() => client.close());
  return { client, ws, fake };
}

const request = (id, method, params) => ({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });

describe("calls of the page", () => {
  test("frames: increasing ids, params as given or omitted, notifications without id", async (t) => {
    const { client, ws } = await setup(t);
    const a = client.call("a");
    const b = client.call("b", [1, "two"]);
    const c = client.call("c", { x: { y: [] } });
    const n = client.notify("n", ["note"]);
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, method: "a" });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 2, method: "b", params: [1, "two"] });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 3, method: "c", params: { x: { y: [] } } });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "n", params: ["note"] });
    await n;
    // Answered out of order.
    ws.serverSend({ jsonrpc: "2.0", id: 3, result: "three" });
    ws.serverSend({ jsonrpc: "2.0", id: 1, result: null });
    ws.serverSend({ jsonrpc: "2.0", id: 2, error: { code: 7, message: "seven", data: { why: [1] } } });
    assert.equal(await c, "three");
    assert.equal(await a, null);
    await assert.rejects(b, (error) => {
      assert.ok(error instanceof RpcError);
      assert.deepEqual([error.code, error.message, error.data], [7, "seven", { why: [1] }]);
      return true;
    });
    assert.equal(client.pendingCalls, 0);
  });

  test("a batch is one array; its answers may come in any order, in one array or not", async (t) => {
    const { client, ws } = await setup(t);
    const result = client.batch((b) => [b.call("x", [1]), b.call("y"), b.notify("z", { k: 1 })]);
    const frame = await ws.nextMessage();
    assert.deepEqual(frame, [request(1, "x", [1]), request(2, "y"), { jsonrpc: "2.0", method: "z", params: { k: 1 } }]);
    ws.serverSend([{ jsonrpc: "2.0", id: 2, result: "y" }]);
    ws.serverSend({ jsonrpc: "2.0", id: 1, result: "x" });
    assert.deepEqual(await result, ["x", "y", undefined]);
  });

  test("a late answer to a withdrawn call is dropped, and so is an unknown one", async (t) => {
    const { client, ws } = await setup(t);
    const errors = [];
    client.on("error", (event) => errors.push(event.error));
    const controller = new AbortController();
    const call = client.call("slow", [], { signal: controller.signal });
    const sent = await ws.nextMessage();
    controller.abort();
    await assert.rejects(call, { name: "AbortError" });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: CANCEL_METHOD, params: { id: sent.id } });
    ws.serverSend({ jsonrpc: "2.0", id: sent.id, error: { code: -32800, message: "Request cancelled" } });
    ws.serverSend({ jsonrpc: "2.0", id: 99, result: 1 });
    ws.serverSend({ jsonrpc: "2.0", id: "a string", result: 1 });
    const next = client.call("next");
    assert.deepEqual(await ws.nextMessage(), request(2, "next"));
    ws.serverSend({ jsonrpc: "2.0", id: 2, result: "fine" });
    assert.equal(await next, "fine");
    assert.deepEqual(errors, []);
  });

  test("answers match calls by the id's value, never by a string or a rounded id", async (t) => {
    const { client, ws } = await setup(t);
    const calls = ["a", "b", "c"].map((m) => client.call(m));
    for (const [i, m] of ["a", "b", "c"].entries()) assert.deepEqual(await ws.nextMessage(), request(i + 1, m));
    // A string id and an id past 2^53 (which a double would round) answer nothing.
    ws.serverSend('{"jsonrpc":"2.0","id":"1","result":"wrong"}');
    ws.serverSend('{"jsonrpc":"2.0","id":9007199254740993,"result":"wrong"}');
    ws.serverSend('{"jsonrpc":"2.0","id":1.0,"result":"one"}');
    ws.serverSend('{"jsonrpc":"2.0","id":2e0,"result":"two"}');
    ws.serverSend('{"jsonrpc":"2.0","id":3.00e0,"result":"three"}');
    assert.deepEqual(await Promise.all(calls), ["one", "two", "three"]);
  });

  test("an error answered with id null to a whole batch fails every call of that batch", async (t) => {
    const { client, ws } = await setup(t);
    const short = client.batch((b) => [b.call("a")]);
    const long = client.batch((b) => [b.call("b"), b.call("c"), b.call("d")]);
    assert.equal((await ws.nextMessage()).length, 1);
    assert.equal((await ws.nextMessage()).length, 3);
    const errors = [];
    client.on("error", ({ error }) => errors.push(error));
    // birpc's -32004 names its limit: the batch longer than it is the one rejected.
    ws.serverSend({ jsonrpc: "2.0", id: null, error: { code: -32004, message: "Batch too large", data: "at most 2 entries" } });
    await assert.rejects(long, (error) => error instanceof RpcError && error.code === ErrorCode.BATCH_TOO_LARGE);
    ws.serverSend([{ jsonrpc: "2.0", id: 1, result: "a" }]);
    assert.deepEqual(await short, ["a"]);
    assert.deepEqual(errors, []);
  });

  test("an error answer without an id is reported as an error event", async (t) => {
    const { client, ws } = await setup(t);
    const reported = client.once("error");
    ws.serverSend({ jsonrpc: "2.0", id: null, error: { code: -32004, message: "Batch too large", data: "at most 1" } });
    const { error } = await reported;
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, -32004);
  });

  test("an invalid answer rejects the call with ProtocolError", async (t) => {
    const { client, ws } = await setup(t);
    const neither = client.call("a");
    const both = client.call("b");
    const badError = client.call("c");
    await ws.nextMessage();
    ws.serverSend({ jsonrpc: "2.0", id: 1 });
    ws.serverSend({ jsonrpc: "2.0", id: 2, result: 1, error: { code: 1, message: "x" } });
    ws.serverSend({ jsonrpc: "2.0", id: 3, error: "not an object" });
    for (const call of [neither, both, badError]) await assert.rejects(call, ProtocolError);
  });
});

describe("requests of the server", () => {
  test("ids are echoed exactly: big and odd numbers, strings, null", async (t) => {
    const { client, ws } = await setup(t, { methods: { echo: ([v]) => v } });
    const ids = ["12345678901234567890", "1.50", "-0", "1e3", '"abc"', '"\\u00e9t\\u00e9"', "null"];
    for (const id of ids) {
      ws.serverSend(`{"method":"echo", "params":[{"id":"inner"}],"jsonrpc":"2.0","id" : ${id} }`);
      assert.equal(await ws.sent.next(), `{"jsonrpc":"2.0","id":${id},"result":{"id":"inner"}}`);
    }
    // An escaped member name is still "id".
    ws.serverSend(`{"jsonrpc":"2.0","method":"echo","params":[5],"\\u0069d":7.0}`);
    assert.equal(await ws.sent.next(), `{"jsonrpc":"2.0","id":7.0,"result":5}`);
  });

  test("scanRawIds finds the top-level ids only", () => {
    assert.equal(scanRawIds(`{"params":{"id":1,"s":"\\"}"},"id":2}`), "2");
    assert.equal(scanRawIds(`{"method":"x"}`), undefined);
    assert.deepEqual(scanRawIds(` [ {"id" :"a\\\\"}, 5, [{"id":1}], {"x":[{"id":3}],"id":4} ] `), [
      '"a\\\\"',
      undefined,
      undefined,
      "4",
    ]);
  });

  test("a batch is answered in one array; notifications and responses in it get no answer", async (t) => {
    const ran = [];
    const { client, ws } = await setup(t, {
      methods: {
        add: ([a, b]) => a + b,
        later: async () => "later",
        note: (params) => {
          ran.push(params);
        },
      },
    });
    const mine = client.call("mine");
    assert.equal((await ws.nextMessage()).id, 1);
    ws.serverSend([
      request(10, "later"),
      { jsonrpc: "2.0", method: "note", params: ["n"] },
      request("s", "add", [2, 3]),
      request(12, "nope"),
      { jsonrpc: "2.0", id: 1, result: "my answer" },
      { jsonrpc: "2.0", id: 13, method: 5 },
      42,
    ]);
    const answer = await ws.nextMessage();
    assert.ok(Array.isArray(answer));
    const byId = new Map(answer.map((m) => [m.id, m]));
    assert.equal(answer.length, 5);
    assert.equal(byId.get(10).result, "later");
    assert.equal(byId.get("s").result, 5);
    assert.equal(byId.get(12).error.code, ErrorCode.METHOD_NOT_FOUND);
    assert.equal(byId.get(13).error.code, ErrorCode.INVALID_REQUEST);
    assert.equal(byId.get(null).error.code, ErrorCode.INVALID_REQUEST);
    assert.equal(await mine, "my answer");
    assert.deepEqual(ran, [["n"]]);

    // Only notifications: no answer. The next frame is the answer to the request after them.
    ws.serverSend([
      { jsonrpc: "2.0", method: "note", params: [1] },
      { jsonrpc: "2.0", method: "note", params: [2] },
    ]);
    ws.serverSend(request(20, "add", [1, 1]));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 20, result: 2 });
    assert.deepEqual(ws.sent.unread, []);
  });

  test("bad input is answered as the specification says", async (t) => {
    const { ws } = await setup(t, { methods: { echo: ([v]) => v } });
    const cases = [
      ["{bad json", null, ErrorCode.PARSE_ERROR],
      ["[]", null, ErrorCode.INVALID_REQUEST],
      ["5", null, ErrorCode.INVALID_REQUEST],
      ['{"jsonrpc":"2.0","id":3,"method":5}', 3, ErrorCode.INVALID_REQUEST],
      ['{"jsonrpc":"1.0","id":4,"method":"echo"}', 4, ErrorCode.INVALID_REQUEST],
      ['{"id":5,"method":"echo"}', 5, ErrorCode.INVALID_REQUEST],
      ['{"jsonrpc":"2.0","id":6,"method":"echo","params":"text"}', 6, ErrorCode.INVALID_REQUEST],
      ['{"jsonrpc":"2.0","id":true,"method":"echo"}', null, ErrorCode.INVALID_REQUEST],
      ['{"jsonrpc":"2.0","id":[1],"method":"echo"}', null, ErrorCode.INVALID_REQUEST],
    ];
    for (const [text, id, code] of cases) {
      ws.serverSend(text);
      const answer = await ws.nextMessage();
      assert.equal(answer.id, id, text);
      assert.equal(answer.error.code, code, text);
      assert.equal(typeof answer.error.message, "string");
    }
    ws.serverSend("{bad");
    assert.equal(await ws.sent.next(), '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
  });

  test("binary frames are read as UTF-8 text", async (t) => {
    const { ws } = await setup(t, { methods: { echo: ([v]) => v } });
    const bytes = new TextEncoder().encode(JSON.stringify(request(1, "echo", ["été"])));
    ws.dispatchEvent(new MessageEvent("message", { data: bytes.buffer }));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, result: "été" });
  });

  test("results: undefined is null; what cannot be encoded, or a plain exception, answers -32603", async (t) => {
    const { client, ws } = await setup(t, {
      methods: {
        nothing: () => {},
        big: () => 10n,
        crash: async () => {
          throw new TypeError("broken");
        },
        coded: () => {
          throw new RpcError(-32602, undefined, "the name");
        },
      },
    });
    const reported = [];
    client.on("error", (event) => reported.push(event.method));
    ws.serverSend(request(1, "nothing"));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, result: null });
    ws.serverSend(request(2, "big"));
    assert.equal((await ws.nextMessage()).error.code, ErrorCode.INTERNAL_ERROR);
    ws.serverSend(request(3, "crash"));
    assert.deepEqual(await ws.nextMessage(), {
      jsonrpc: "2.0",
      id: 3,
      error: { code: -32603, message: "Internal error", data: "broken" },
    });
    ws.serverSend(request(4, "coded"));
    assert.deepEqual(await ws.nextMessage(), {
      jsonrpc: "2.0",
      id: 4,
      error: { code: -32602, message: "Invalid params", data: "the name" },
    });
    assert.deepEqual(reported, ["big", "crash"]);
  });

  test("$/cancelRequest aborts the handler's signal and answers -32800 at once", async (t) => {
    const started = gate();
    let signal;
    const finish = gate();
    const { ws } = await setup(t, {
      methods: {
        slow: async (params, context) => {
          signal = context.signal;
          started.open();
          await finish.promise;
          return "too late";
        },
        echo: ([v]) => v,
      },
    });
    ws.serverSend(request(9, "slow"));
    await started.promise;
    assert.equal(signal.aborted, false);
    ws.serverSend({ jsonrpc: "2.0", method: CANCEL_METHOD, params: { id: 9 } });
    assert.deepEqual(await ws.nextMessage(), {
      jsonrpc: "2.0",
      id: 9,
      error: { code: -32800, message: "Request cancelled" },
    });
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof RpcError);
    assert.equal(signal.reason.code, ErrorCode.REQUEST_CANCELLED);
    // The handler's own answer, when it comes, is dropped.
    finish.open();
    ws.serverSend(request(10, "echo", ["next"]));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 10, result: "next" });
    assert.deepEqual(ws.sent.unread, []);
  });

  test("notifications run one at a time, in order; requests do not wait for them", async (t) => {
    const seen = [];
    const first = gate();
    const third = gate();
    const { ws } = await setup(t, {
      methods: {
        tick: async ([n], context) => {
          assert.equal(context.notification, true);
          assert.equal(context.id, undefined);
          seen.push(`start ${n}`);
          if (n === 1) await first.promise;
          seen.push(`end ${n}`);
          if (n === 3) third.open();
        },
        echo: ([v]) => v,
      },
    });
    for (const n of [1, 2, 3]) ws.serverSend({ jsonrpc: "2.0", method: "tick", params: [n] });
    ws.serverSend(request(1, "echo", ["while blocked"]));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, result: "while blocked" });
    assert.deepEqual(seen, ["start 1"]);
    first.open();
    await third.promise;
    assert.deepEqual(seen, ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]);
  });
});

describe("the connection ending", () => {
  for (const [code, reason] of [
    [1008, "policy"],
    [1009, "message too big"],
    [1011, "internal error"],
  ]) {
    test(`close code ${code} rejects every pending call at once with the code and reason`, async (t) => {
      const running = gate();
      let handlerSignal;
      const { client, ws } = await setup(t, {
        methods: {
          hang: (params, { signal }) => {
            handlerSignal = signal;
            running.open();
            return new Promise(() => {});
          },
        },
      });
      const calls = [client.call("a")];
      const batch = client.batch((b) => {
        calls.push(b.call("b"), b.call("c"));
      });
      await ws.nextMessage();
      await ws.nextMessage();
      await batch;
      ws.serverSend(request(1, "hang"));
      await running.promise;
      let rejectedBeforeClose = 0;
      for (const call of calls) call.catch(() => rejectedBeforeClose++);
      const closed = client.once("close");
      ws.serverClose(code, reason);
      // Rejected before the close event is told (synchronously with it).
      const event = await closed;
      assert.equal(rejectedBeforeClose, 3);
      assert.deepEqual([event.code, event.reason, event.willReconnect], [code, reason, false]);
      for (const call of calls) {
        await assert.rejects(call, (error) => {
          assert.ok(error instanceof DisconnectedError);
          assert.deepEqual([error.code, error.reason], [code, reason]);
          return true;
        });
      }
      assert.equal(handlerSignal.aborted, true);
      assert.ok(handlerSignal.reason instanceof DisconnectedError);
      assert.equal(client.pendingCalls, 0);
    });
  }

  test("an error event without a close event ends the connection (1006); reconnecting starts ids over", async () => {
    const fake = fakeSockets();
    const client = new Client("ws://fake.test/", { WebSocket: fake.WebSocket, reconnect: { initialDelay: 1, jitter: 0 } });
    const first = await fake.nextSocket();
    first.serverOpen();
    const sent = client.call("a");
    assert.equal((await first.nextMessage()).id, 1);
    const reconnecting = client.once("reconnecting");
    first.serverFail();
    await assert.rejects(sent, { name: "DisconnectedError", code: 1006 });
    assert.deepEqual(await reconnecting, { type: "reconnecting", attempt: 1, delay: 1 });
    const second = await fake.nextSocket();
    assert.equal(second.url, "ws://fake.test/");
    const opened = client.once("connected");
    second.serverOpen();
    await opened;
    const again = client.call("b");
    assert.deepEqual(await second.nextMessage(), request(1, "b"));
    second.serverSend({ jsonrpc: "2.0", id: 1, result: "b" });
    assert.equal(await again, "b");
    // The first call was never sent again.
    assert.deepEqual(second.sent.items.length, 1);
    await client.close();
  });

  test("a connection attempt that takes too long fails (connectTimeout)", async () => {
    const fake = fakeSockets();
    const client = new Client("ws://fake.test/", { WebSocket: fake.WebSocket, reconnect: false, connectTimeout: 20 });
    const ws = await fake.nextSocket();
    await assert.rejects(client.ready, { name: "DisconnectedError", code: 1006, reason: "connection timed out" });
    assert.equal(ws.closeCalls.length, 1);
    assert.equal(client.state, "closed");
  });

  test("close() closes the socket with the code and reason given", async (t) => {
    const { client, ws } = await setup(t);
    const closed = client.close(3000, "bye");
    assert.deepEqual(ws.closeCalls, [[3000, "bye"]]);
    await closed;
    assert.equal(ws.readyState, 3);
    assert.equal(client.state, "closed");
  });
});

describe("API details", () => {
  test("RpcError: default messages, JSON form, integer codes", () => {
    const error = new RpcError(ErrorCode.METHOD_NOT_FOUND);
    assert.equal(error.message, "Method not found");
    assert.equal(error.name, "RpcError");
    assert.ok(error instanceof Error);
    assert.deepEqual(error.toJSON(), { code: -32601, message: "Method not found" });
    assert.deepEqual(new RpcError(5, "five", [5]).toJSON(), { code: 5, message: "five", data: [5] });
    assert.deepEqual(RpcError.fromJSON({ code: 1, message: "m", data: null }).data, null);
    assert.throws(() => new RpcError(1.5, "x"), TypeError);
  });

  test("events: aliases, off, once, and a throwing listener does not break the client", async () => {
    const fake = fakeSockets();
    const client = new Client("ws://fake.test/", { WebSocket: fake.WebSocket, reconnect: false });
    const ws = await fake.nextSocket();
    const seen = [];
    const off = client.on("open", () => seen.push("open"));
    client.on("connected", () => seen.push("connected"));
    const removed = () => seen.push("removed");
    client.on("open", removed);
    client.off("connected", removed);
    client.off("open", removed);
    const reported = [];
    const reportError = globalThis.reportError;
    globalThis.reportError = (error) => reported.push(error.message);
    client.on("open", () => {
      throw new Error("a listener failed");
    });
    client.on("open", () => seen.push("after the failure"));
    try {
      ws.serverOpen();
    } finally {
      globalThis.reportError = reportError;
    }
    await client.ready;
    assert.deepEqual(seen, ["open", "connected", "after the failure"]);
    assert.deepEqual(reported, ["a listener failed"]);
    off();
    const aborted = AbortSignal.abort(new Error("gave up"));
    await assert.rejects(client.once("close", { signal: aborted }), /gave up/);
  });

  test("expose checks its arguments", () => {
    const fake = fakeSockets();
    const client = new Client("ws://fake.test/", { WebSocket: fake.WebSocket, autoConnect: false });
    assert.throws(() => client.expose("x", "not a function"), TypeError);
    assert.throws(() => client.expose(CANCEL_METHOD, () => {}), TypeError);
    assert.equal(client.expose({ a: () => 1, b: () => 2 }), client);
    assert.equal(client.unexpose("a"), true);
    assert.equal(client.unexpose("a"), false);
  });

  test("options are checked", () => {
    const fake = fakeSockets();
    const make = (options) => new Client("ws://fake.test/", { WebSocket: fake.WebSocket, autoConnect: false, ...options });
    assert.throws(() => make({ timeout: 0 }), RangeError);
    assert.throws(() => make({ maxPendingCalls: -1 }), RangeError);
    assert.throws(() => make({ whenDisconnected: "later" }), TypeError);
    assert.throws(() => make({ reconnect: { factor: 0.5 } }), RangeError);
    assert.throws(() => make({ reconnect: { jitter: 2 } }), RangeError);
    assert.throws(() => new Client("ws://x/", { WebSocket: 42 }), TypeError);
    assert.equal(make({ timeout: null }).state, "idle");
    assert.equal(make({ reconnect: { initialDelay: undefined, maxAttempts: undefined } }).state, "idle");
  });
});

test("the module exports exactly what birpc.d.ts declares", async () => {
  const { readFile } = await import("node:fs/promises");
  const declarations = await readFile(new URL("../birpc.d.ts", import.meta.url), "utf8");
  const declared = [...declarations.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]);
  const module = await import("../birpc.js");
  assert.deepEqual(Object.keys(module).sort(), declared.sort());
});
