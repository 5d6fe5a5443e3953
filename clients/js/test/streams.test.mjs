// Streams (docs/streams.md): downloads, uploads and the page's stream methods, against the Rust interop
// server, then message by message with a fake WebSocket driven by the test.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  Client,
  DisconnectedError,
  ErrorCode,
  LimitExceededError,
  ProtocolError,
  RpcError,
  StreamMethod,
  connect,
} from "../birpc.js";
import { startServer } from "../test-support/server.mjs";
import { fakeSockets, gate, spySockets } from "../test-support/sockets.mjs";

const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Every message of a frame (a batch is several). */
const messages = (frame) => (Array.isArray(frame) ? frame : [frame]);

/** Whether `message` is an item (not an end) of stream `id`. */
const isItem = (message, id) =>
  typeof message.method === "string" &&
  !message.method.startsWith("$/") &&
  message.params?.subscription === id &&
  Object.hasOwn(message.params, "result");

const isCredit = (message, id) => message.method === StreamMethod.CREDIT && message.params?.subscription === id;

/**
 * Checks, over the wire log of a spy, that the items of stream `id` never went beyond the credit granted
 * for it before: `window` to start with, plus every `$/stream.credit`. `itemsFrom` and `creditFrom` are
 * "sent" or "received" (the page consumes: items received, credit sent; it produces: the other way).
 * Returns the items and the credit counted.
 */
function checkCredit(wire, id, window, { itemsFrom, creditFrom }) {
  let items = 0;
  let granted = window;
  for (const entry of wire.items) {
    for (const message of messages(entry[itemsFrom] ?? [])) {
      if (isItem(message, id)) {
        items++;
        assert.ok(items <= granted, `item ${items} of stream ${id} went with only ${granted} granted`);
      }
    }
    for (const message of messages(entry[creditFrom] ?? [])) {
      if (isCredit(message, id)) granted += message.params.credit;
    }
  }
  return { items, granted };
}

/** Resolves once `count` items of stream `id` have arrived at the page. */
async function itemsArrived(spy, id, count) {
  let seen = 0;
  await spy.received.find((frame) => messages(frame).some((m) => isItem(m, id) && ++seen === count));
}

/** Every item of an async iterable (Array.fromAsync, which Node 20 lacks). */
async function collect(items) {
  const all = [];
  for await (const item of items) all.push(item);
  return all;
}

async function* numbers(count) {
  for (let i = 0; i < count; i++) yield i;
}

// A test that would hang fails instead.
const bounded = { timeout: 20_000 };

describe("against the Rust server", () => {
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

  test("a download yields every item in order, announced by $/stream.open right before its request", bounded, async (t) => {
    const { c, spy } = await client(t);
    const stream = c.stream("ticks", [5, 0]);
    const items = [];
    for await (const item of stream) items.push(item);
    assert.deepEqual(items, range(5));
    assert.equal(stream.state, "ended");
    assert.equal(await stream.opened, stream.id);

    const request = spy.sent.items.findIndex((m) => m.method === "ticks");
    assert.deepEqual(spy.sent.items[request - 1], {
      jsonrpc: "2.0",
      method: "$/stream.open",
      params: { id: spy.sent.items[request].id, window: 256 },
    });
    // The answer (the stream id) came before the first item, the end after the last.
    const received = spy.received.items.flatMap(messages);
    const answer = received.findIndex((m) => m.id === spy.sent.items[request].id);
    assert.equal(received[answer].result, stream.id);
    assert.ok(received.findIndex((m) => isItem(m, stream.id)) > answer);
    assert.deepEqual(received.at(-1), { jsonrpc: "2.0", method: "$/stream.end", params: { subscription: stream.id } });
    // By name too, with the items typed as the caller says.
    assert.deepEqual(await collect(c.stream("ticks", { count: 3, every_ms: 0 })), [0, 1, 2]);
  });

  test("the page holds at most a window of items, and grants more as they are taken", bounded, async (t) => {
    const { c, spy } = await client(t);
    const stream = c.stream("ticks", [40, 0], { window: 4 });
    const id = await stream.opened;
    await itemsArrived(spy, id, 4);
    // The server could send no further item: had it, the page would have counted it (and failed the stream
    // with an overrun). A round trip to the server gives it every chance to.
    await c.call("sleep", [50]);
    const arrived = () => spy.received.items.flatMap(messages).filter((m) => isItem(m, id)).length;
    assert.equal(arrived(), 4);
    assert.equal(stream.state, "open");
    assert.equal(stream.received, 4);
    assert.equal(stream.buffered, 4);

    // Half a window taken: 2 credits go in one message, and 2 more items come, no more.
    assert.deepEqual(await stream.next(), { value: 0, done: false });
    assert.equal(spy.sent.items.filter((m) => isCredit(m, id)).length, 0);
    assert.deepEqual(await stream.next(), { value: 1, done: false });
    const credit = await spy.sent.find((m) => isCredit(m, id));
    assert.deepEqual(credit.params, { subscription: id, credit: 2 });
    await itemsArrived(spy, id, 6);
    await c.call("sleep", [50]);
    assert.equal(arrived(), 6);
    assert.equal(stream.received, 6);
    assert.equal(stream.buffered, 4);

    const rest = [];
    for await (const item of stream) rest.push(item);
    assert.deepEqual(rest, range(40).slice(2));
    const { items } = checkCredit(spy.wire, id, 4, { itemsFrom: "received", creditFrom: "sent" });
    assert.equal(items, 40);
  });

  test("100 streams at once each get their items, in order", bounded, async (t) => {
    const { c, spy } = await client(t);
    const streams = range(100).map((i) => c.stream("ticks", [20 + (i % 7), 0], { window: 4 }));
    const all = await Promise.all(streams.map((stream) => collect(stream)));
    all.forEach((items, i) => assert.deepEqual(items, range(20 + (i % 7))));
    assert.equal(new Set(streams.map((s) => s.id)).size, 100);
    for (const stream of streams) checkCredit(spy.wire, stream.id, 4, { itemsFrom: "received", creditFrom: "sent" });
  });

  test("an AbortSignal stops a stream midway; calls and streams go on", bounded, async (t) => {
    const { c, spy } = await client(t);
    const controller = new AbortController();
    const stream = c.stream("ticks", [1_000_000, 1], { signal: controller.signal });
    const items = [];
    await assert.rejects(
      (async () => {
        for await (const item of stream) {
          items.push(item);
          if (items.length === 3) controller.abort();
        }
      })(),
      { name: "AbortError" },
    );
    assert.deepEqual(items, [0, 1, 2]);
    const cancel = await spy.sent.find((m) => m.method === StreamMethod.CANCEL);
    assert.deepEqual(cancel, { jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: stream.id } });
    assert.equal(stream.state, "ended");

    assert.equal(await c.call("echo", ["after"]), "after");
    assert.deepEqual(await collect(c.stream("ticks", [3, 0])), [0, 1, 2]);

    // A reason of one's own is what the iteration throws.
    const reason = new Error("enough");
    const again = new AbortController();
    const other = c.stream("ticks", [1_000_000, 1], { signal: again.signal });
    assert.equal((await other.next()).value, 0);
    again.abort(reason);
    await assert.rejects(other.next(), (error) => error === reason);
    assert.deepEqual(await other.next(), { value: undefined, done: true });
  });

  test("break out of for await cancels the stream", bounded, async (t) => {
    const { c, spy } = await client(t);
    const stream = c.stream("ticks", [1_000_000, 0], { window: 8 });
    let taken = 0;
    for await (const item of stream) {
      assert.equal(item, taken++);
      if (taken === 20) break;
    }
    const cancel = await spy.sent.find((m) => m.method === StreamMethod.CANCEL);
    assert.equal(cancel.params.subscription, stream.id);
    assert.equal(stream.buffered, 0);
    assert.equal(await c.call("echo", [1]), 1);
  });

  test("the server's errors: no such method, invalid params, too many streams", bounded, async (t) => {
    const { c } = await client(t);
    const missing = c.stream("no_such_stream", []);
    await assert.rejects(missing.next(), (error) => error instanceof RpcError && error.code === ErrorCode.METHOD_NOT_FOUND);
    await assert.rejects(missing.opened, { code: ErrorCode.METHOD_NOT_FOUND });
    assert.deepEqual(await missing.next(), { value: undefined, done: true });
    await assert.rejects(c.stream("ticks", ["many"]).next(), { code: ErrorCode.INVALID_PARAMS });

    const { c: limited } = await client(t, { maxStreams: 2 });
    const open = [limited.stream("ticks", [1_000_000, 5]), limited.stream("ticks", [1_000_000, 5])];
    await assert.rejects(limited.stream("ticks", [1, 0]).next(), (error) => {
      assert.ok(error instanceof LimitExceededError);
      assert.equal(error.limit, "maxStreams");
      return true;
    });
    await open[0].return();
    assert.deepEqual(await collect(limited.stream("ticks", [2, 0])), [0, 1]);
    open[1].cancel();
  });

  test("an upload of 10,000 numbers is summed, sent only within the credit the server grants", bounded, async (t) => {
    const { c, spy } = await client(t);
    let finished = false;
    async function* source() {
      try {
        yield* numbers(10_000);
      } finally {
        finished = true;
      }
    }
    const upload = c.upload(source());
    assert.equal(await c.call("sum_upload", [upload]), (10_000 * 9_999) / 2);
    assert.ok(finished);

    const request = spy.sent.items.find((m) => m.method === "sum_upload");
    assert.deepEqual(request.params, [upload.id]);
    // Nothing for the upload before the first credit, then never beyond the credit.
    const first = spy.wire.items.findIndex((e) => e.sent && isItem(e.sent, upload.id));
    const credit = spy.wire.items.findIndex((e) => e.received && isCredit(e.received, upload.id));
    assert.ok(credit >= 0 && credit < first);
    const { items } = checkCredit(spy.wire, upload.id, 0, { itemsFrom: "sent", creditFrom: "received" });
    assert.equal(items, 10_000);
    const end = spy.sent.items.filter((m) => m.method === StreamMethod.END);
    assert.deepEqual(end, [{ jsonrpc: "2.0", method: "$/stream.end", params: { subscription: upload.id } }]);
    assert.equal(spy.sent.items.filter((m) => isItem(m, upload.id))[0].method, "sum_upload");

    // A plain iterable, params by name; ids are not reused.
    const second = c.upload([1, 2, 3]);
    assert.notEqual(second.id, upload.id);
    assert.equal(await c.call("sum_upload", { numbers: second }), 6);
    assert.equal(await c.call("sum_upload", [c.upload([])]), 0);
  });

  test("an upload whose iteration fails ends with the error, and the call fails", bounded, async (t) => {
    const { c, spy } = await client(t);
    async function* failing() {
      yield 1;
      throw new Error("the disk is gone");
    }
    const upload = c.upload(failing());
    await assert.rejects(c.call("sum_upload", [upload]), RpcError);
    const end = await spy.sent.find((m) => m.method === StreamMethod.END);
    assert.deepEqual(end.params, {
      subscription: upload.id,
      error: { code: ErrorCode.INTERNAL_ERROR, message: "Error: the disk is gone" },
    });
  });

  test("an upload stops when its call is withdrawn, and cannot be used twice", bounded, async (t) => {
    const { c, spy } = await client(t);
    const stopped = gate();
    async function* endless() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        stopped.open();
      }
    }
    const controller = new AbortController();
    const upload = c.upload(endless());
    const call = c.call("sum_upload", [upload], { signal: controller.signal });
    await spy.sent.find((m) => isItem(m, upload.id));
    controller.abort();
    await assert.rejects(call, { name: "AbortError" });
    await stopped.promise;
    await assert.rejects(c.call("sum_upload", [upload]), TypeError);
    await assert.rejects(c.notify("sum_upload", [c.upload([1])]), TypeError);
    assert.equal(await c.call("echo", ["still here"]), "still here");
  });

  test("the server calls a stream method of the page, within the credit it grants", bounded, async (t) => {
    const { c, spy } = await client(t);
    const calls = [];
    c.exposeStream("count_to", ([n], context) => {
      calls.push(context.method);
      return numbers(n);
    });
    assert.deepEqual(await c.call("ask_client_stream", ["count_to", [300]]), range(300));
    assert.deepEqual(calls, ["count_to"]);

    const request = spy.received.items.flatMap(messages).find((m) => m.method === "count_to");
    const open = spy.received.items.flatMap(messages).find((m) => m.method === StreamMethod.OPEN);
    assert.equal(open?.params.id, request.id, "the server announces its window");
    const sent = spy.sent.items.flatMap(messages);
    const answer = sent.find((m) => m.id === request.id && !("method" in m));
    const id = answer.result;
    assert.ok(Number.isInteger(id));
    const items = sent.filter((m) => isItem(m, id));
    assert.deepEqual(items.map((m) => m.method), Array(300).fill("count_to"));
    assert.ok(sent.indexOf(answer) < sent.indexOf(items[0]), "the answer goes before the first item");
    const credit = checkCredit(spy.wire, id, open.params.window, { itemsFrom: "sent", creditFrom: "received" });
    assert.equal(credit.items, 300);
    const end = sent.findIndex((m) => m.method === StreamMethod.END);
    assert.deepEqual(sent[end], { jsonrpc: "2.0", method: "$/stream.end", params: { subscription: id } });
    assert.ok(end > sent.indexOf(items.at(-1)));

    // Sync iterables and promises of iterables do too.
    c.exposeStream("letters", async ({ text }) => text.split(""));
    assert.deepEqual(await c.call("ask_client_stream", ["letters", { text: "abc" }]), ["a", "b", "c"]);
  });

  test("a stream method's RpcError ends the stream with it, and the server passes it on", bounded, async (t) => {
    const { c } = await client(t);
    c.exposeStream("fails_midway", async function* () {
      yield 1;
      yield 2;
      throw new RpcError(4001, "no more", { after: 2 });
    });
    await assert.rejects(c.call("ask_client_stream", ["fails_midway", []]), (error) => {
      assert.ok(error instanceof RpcError);
      assert.deepEqual([error.code, error.message, error.data], [4001, "no more", { after: 2 }]);
      return true;
    });
    c.exposeStream("refuses", () => {
      throw new RpcError(4002, "not today");
    });
    await assert.rejects(c.call("ask_client_stream", ["refuses", []]), { code: 4002, message: "not today" });

    const errors = [];
    c.on("error", (event) => errors.push(event));
    c.exposeStream("breaks", function* () {
      yield "a";
      throw new TypeError("oops");
    });
    await assert.rejects(c.call("ask_client_stream", ["breaks", []]), (error) => {
      assert.equal(error.code, ErrorCode.INTERNAL_ERROR);
      assert.equal(error.message, "TypeError: oops");
      return true;
    });
    assert.deepEqual(errors.map((e) => [e.method, e.error.message]), [["breaks", "oops"]]);
    await assert.rejects(c.call("ask_client_stream", ["not_exported", []]), { code: ErrorCode.METHOD_NOT_FOUND });
  });

  test("a connection that ends midway ends its streams with DisconnectedError", bounded, async (t) => {
    const { c, spy } = await client(t, { reconnect: { initialDelay: 10, maxDelay: 10 } });
    const stopped = gate();
    async function* endless() {
      try {
        for (;;) yield 1;
      } finally {
        stopped.open();
      }
    }
    const upload = c.upload(endless());
    const summing = c.call("sum_upload", [upload]);
    const stream = c.stream("ticks", [1_000_000, 1]);
    assert.deepEqual(await stream.next(), { value: 0, done: false });
    await spy.sent.find((m) => isItem(m, upload.id));
    const reopened = c.once("open");

    c.call("close", [4000, "bye"]).catch(() => {});
    await assert.rejects(
      (async () => {
        for await (const item of stream) assert.equal(typeof item, "number");
      })(),
      (error) => {
        assert.ok(error instanceof DisconnectedError);
        assert.deepEqual([error.code, error.reason], [4000, "bye"]);
        return true;
      },
    );
    await assert.rejects(summing, { name: "DisconnectedError", code: 4000 });
    await stopped.promise;
    // The client reconnects; the stream does not come back, new ones work.
    await reopened;
    assert.equal(stream.state, "ended");
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
    assert.deepEqual(await collect(c.stream("ticks", [2, 0])), [0, 1]);
  });
});

describe("on the wire (a fake server)", () => {
  /** A client on an open fake socket. */
  async function setup(t, options = {}) {
    const fake = fakeSockets();
    const client = new Client("ws://fake.test/rpc", { WebSocket: fake.WebSocket, reconnect: false, ...options });
    const ws = await fake.nextSocket();
    ws.serverOpen();
    await client.ready;
    t.after(() => client.close());
    return { client, ws };
  }

  /** Resolves once every promise reaction due has run (the fake socket involves no timers). */
  const quiet = () => new Promise((resolve) => setImmediate(resolve));

  const item = (method, subscription, result) => ({ jsonrpc: "2.0", method, params: { subscription, result } });
  const end = (subscription, error) => ({
    jsonrpc: "2.0",
    method: "$/stream.end",
    params: error === undefined ? { subscription } : { subscription, error },
  });

  /** Opens a download: returns the stream and its request id, once the fake server answered `id`. */
  async function open(client, ws, id, options = {}) {
    const stream = client.stream("feed", [], options);
    const announcement = await ws.nextMessage();
    const request = await ws.nextMessage();
    assert.deepEqual(announcement, {
      jsonrpc: "2.0",
      method: "$/stream.open",
      params: { id: request.id, window: options.window ?? 256 },
    });
    ws.serverSend({ jsonrpc: "2.0", id: request.id, result: id });
    assert.equal(await stream.opened, id);
    return { stream, request };
  }

  test("items go to their stream by id; credit is granted per half window; ends", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const { stream: a } = await open(client, ws, 1, { window: 4 });
    const { stream: b } = await open(client, ws, "one", { window: 5 });
    ws.serverSend(item("feed", 1, "a0"));
    ws.serverSend(item("feed", "one", "b0"));
    ws.serverSend(item("feed", "1", "not a's: a string id"));
    ws.serverSend(item("feed", 1, "a1"));
    assert.deepEqual([a.buffered, b.buffered], [2, 1]);
    assert.deepEqual(await a.next(), { value: "a0", done: false });
    assert.deepEqual(await a.next(), { value: "a1", done: false });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: 1, credit: 2 } });
    // A window of 5: credit once 3 are taken (half of 5, rounded up).
    for (let i = 1; i < 4; i++) ws.serverSend(item("feed", "one", `b${i}`));
    const taken = [];
    for (let i = 0; i < 3; i++) taken.push((await b.next()).value);
    assert.deepEqual(taken, ["b0", "b1", "b2"]);
    assert.deepEqual(await ws.nextMessage(), {
      jsonrpc: "2.0",
      method: "$/stream.credit",
      params: { subscription: "one", credit: 3 },
    });
    // Items waiting are still taken after the end.
    ws.serverSend(end("one"));
    ws.serverSend(item("feed", "one", "late"));
    assert.deepEqual(await collect(b), ["b3"]);
    // ... unless the loop leaves first.
    const { stream: d } = await open(client, ws, 4);
    ws.serverSend(item("feed", 4, "d0"));
    ws.serverSend(item("feed", 4, "d1"));
    ws.serverSend(end(4, { code: 9, message: "nine" }));
    for await (const value of d) {
      assert.equal(value, "d0");
      break;
    }
    assert.deepEqual(await d.next(), { value: undefined, done: true });
    // An error end, after the items, as $/stream.end or under the method's name.
    ws.serverSend(item("feed", 1, "a2"));
    ws.serverSend(end(1, { code: 7, message: "seven", data: [7] }));
    assert.deepEqual(await a.next(), { value: "a2", done: false });
    await assert.rejects(a.next(), (error) => {
      assert.ok(error instanceof RpcError);
      assert.deepEqual([error.code, error.message, error.data], [7, "seven", [7]]);
      return true;
    });
    assert.deepEqual(await a.next(), { value: undefined, done: true });
    const { stream: c } = await open(client, ws, 2);
    ws.serverSend({ jsonrpc: "2.0", method: "feed", params: { subscription: 2, error: { code: 8, message: "eight" } } });
    await assert.rejects(c.next(), { code: 8, message: "eight" });
    assert.equal(ws.sent.unread.length, 0);
  });

  test("an item beyond the credit is an overrun: the stream fails and is cancelled", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const { stream } = await open(client, ws, 5, { window: 2 });
    ws.serverSend(item("feed", 5, 0));
    ws.serverSend(item("feed", 5, 1));
    ws.serverSend(item("feed", 5, 2));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: 5 } });
    assert.deepEqual(await stream.next(), { value: 0, done: false });
    assert.deepEqual(await stream.next(), { value: 1, done: false });
    await assert.rejects(stream.next(), (error) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, /window of 2 items/);
      return true;
    });
    // No credit for a stream that ended.
    assert.equal(ws.sent.unread.length, 0);
  });

  test("a stream cancelled before its answer: the request is withdrawn, and a late stream cancelled", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const controller = new AbortController();
    const stream = client.stream("feed", [1], { signal: controller.signal });
    await ws.nextMessage();
    const request = await ws.nextMessage();
    controller.abort();
    await assert.rejects(stream.next(), { name: "AbortError" });
    await assert.rejects(stream.opened, { name: "AbortError" });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: request.id } });
    ws.serverSend({ jsonrpc: "2.0", id: request.id, result: 9 });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: 9 } });
    ws.serverSend(item("feed", 9, "dropped"));
    // Aborted already: nothing is sent.
    const gone = client.stream("feed", [], { signal: AbortSignal.abort() });
    await assert.rejects(gone.next(), { name: "AbortError" });
    assert.equal(client.pendingCalls, 0);
    assert.equal(ws.sent.unread.length, 0);
  });

  test("a disconnection ends a stream at once, dropping the items not taken", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const { stream } = await open(client, ws, 3);
    ws.serverSend(item("feed", 3, "x"));
    ws.serverClose(1011, "gone");
    await assert.rejects(stream.next(), (error) => error instanceof DisconnectedError && error.code === 1011);
    assert.equal(stream.buffered, 0);
  });

  test("bad arguments end the stream without sending", bounded, async (t) => {
    const { client, ws } = await setup(t);
    await assert.rejects(client.stream("feed", [], { window: 0 }).next(), RangeError);
    await assert.rejects(client.stream("feed", [], { window: 2.5 }).next(), RangeError);
    await assert.rejects(client.stream("feed", "text").next(), TypeError);
    await assert.rejects(client.stream("feed", [client.upload([1])]).next(), TypeError);
    assert.throws(() => client.upload(5), TypeError);
    assert.throws(() => client.expose("$/stream.credit", () => {}), TypeError);
    assert.throws(() => client.exposeStream("$/stream.cancel", () => []), TypeError);
    assert.equal(ws.sent.unread.length, 0);
  });

  test("a stream method honours the announced window and the credit that follows", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const stopped = gate();
    let pulled = 0;
    client.exposeStream("digits", async function* ([n]) {
      try {
        for (let i = 0; i < n; i++) {
          pulled = i + 1;
          yield i;
        }
      } finally {
        stopped.open();
      }
    });
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.open", params: { id: 40, window: 2 } });
    ws.serverSend({ jsonrpc: "2.0", id: 40, method: "digits", params: [5] });
    const answer = await ws.nextMessage();
    assert.deepEqual(answer, { jsonrpc: "2.0", id: 40, result: answer.result });
    const id = answer.result;
    assert.deepEqual(await ws.nextMessage(), item("digits", id, 0));
    assert.deepEqual(await ws.nextMessage(), item("digits", id, 1));
    // Out of credit: nothing more is sent, and nothing more is pulled from the source.
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
    assert.equal(pulled, 2);
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: id, credit: 1 } });
    assert.deepEqual(await ws.nextMessage(), item("digits", id, 2));
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: id, credit: 10 } });
    assert.deepEqual(await ws.nextMessage(), item("digits", id, 3));
    assert.deepEqual(await ws.nextMessage(), item("digits", id, 4));
    assert.deepEqual(await ws.nextMessage(), end(id));
    await stopped.promise;
    // A cancellation of a stream that ended: false.
    ws.serverSend({ jsonrpc: "2.0", id: 41, method: "$/stream.cancel", params: [id] });
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 41, result: false });
  });

  test("without an announcement a stream method sends as the socket takes it; a cancel stops it", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const stopped = gate();
    let signal;
    client.exposeStream("forever", (_params, context) => {
      signal = context.signal;
      return (function* () {
        try {
          for (let i = 0; ; i++) yield i;
        } finally {
          stopped.open();
        }
      })();
    });
    // Announcements are claimed by id only: this one is for another request.
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.open", params: { id: 99, window: 1 } });
    ws.serverSend({ jsonrpc: "2.0", id: 1, method: "forever" });
    const { result: id } = await ws.nextMessage();
    for (let i = 0; i < 100; i++) assert.deepEqual(await ws.nextMessage(), item("forever", id, i));
    ws.serverSend({ jsonrpc: "2.0", id: 2, method: "$/stream.cancel", params: { subscription: id } });
    await stopped.promise;
    assert.equal(signal.aborted, true);
    const rest = [];
    for (;;) {
      const message = await ws.nextMessage();
      if (message.id === 2) {
        assert.deepEqual(message, { jsonrpc: "2.0", id: 2, result: true });
        break;
      }
      rest.push(message);
    }
    assert.ok(rest.every((m) => m.method === "forever"));
    await client.notify("after");
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "after" });
  });

  test("a stream method sends no faster than the socket takes its frames", bounded, async (t) => {
    // No polling of bufferedAmount: the test says when to look again (a call to the client does it too).
    const { client, ws } = await setup(t, { highWaterMark: 100, pollInterval: 600_000 });
    // The socket keeps what it is given, as a slow network would, until the test drains it.
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      send(data);
      ws.bufferedAmount += data.length;
    };
    let pulled = 0;
    client.exposeStream("many", function* () {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield "x".repeat(50);
      }
    });
    ws.serverSend({ jsonrpc: "2.0", id: 1, method: "many" });
    const { result: id } = await ws.nextMessage();
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await ws.nextMessage(), item("many", id, "x".repeat(50)));
      // Over the mark now: nothing more goes, and nothing more is pulled from the source.
      await quiet();
      assert.equal(ws.sent.unread.length, 0);
      assert.equal(pulled, i + 1);
      ws.bufferedAmount = 0;
      await client.notify("look");
      assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", method: "look" });
    }
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: id } });
  });

  test("an upload sends nothing before credit, then within it; it stops when the call is answered", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const stopped = gate();
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i * 10;
      } finally {
        stopped.open();
      }
    }
    const upload = client.upload(source());
    const call = client.call("sum_upload", [upload]);
    const request = await ws.nextMessage();
    assert.deepEqual(request, { jsonrpc: "2.0", id: request.id, method: "sum_upload", params: [upload.id] });
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: upload.id, credit: 2 } });
    assert.deepEqual(await ws.nextMessage(), item("sum_upload", upload.id, 0));
    assert.deepEqual(await ws.nextMessage(), item("sum_upload", upload.id, 10));
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
    ws.serverSend({ jsonrpc: "2.0", id: request.id, result: 10 });
    assert.equal(await call, 10);
    await stopped.promise;
    // Credit for it now changes nothing.
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: upload.id, credit: 5 } });
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
  });

  test("an upload the server cancels stops without an end", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const stopped = gate();
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        stopped.open();
      }
    }
    const upload = client.upload(source());
    const call = client.call("take_one", { items: upload });
    const request = await ws.nextMessage();
    assert.deepEqual(request.params, { items: upload.id });
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: upload.id, credit: 1 } });
    assert.deepEqual(await ws.nextMessage(), item("take_one", upload.id, 0));
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.cancel", params: [upload.id] });
    await stopped.promise;
    ws.serverSend({ jsonrpc: "2.0", method: "$/stream.credit", params: { subscription: upload.id, credit: 1 } });
    ws.serverSend({ jsonrpc: "2.0", id: request.id, result: 0 });
    assert.equal(await call, 0);
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
  });

  const credit = (subscription, n) => ({
    jsonrpc: "2.0",
    method: "$/stream.credit",
    params: { subscription, credit: n },
  });

  test("a handler takes an upload of the server: credit at once, more as items are taken", bounded, async (t) => {
    const { client, ws } = await setup(t);
    client.expose("mean", async (params) => {
      let sum = 0;
      let count = 0;
      for await (const sample of client.receiveUpload(params[0], { window: 4 })) {
        sum += sample;
        count++;
      }
      return sum / count;
    });
    ws.serverSend({ jsonrpc: "2.0", id: 1, method: "mean", params: [7] });
    assert.deepEqual(await ws.nextMessage(), credit(7, 4));
    for (const sample of [1, 2, 3, 4]) ws.serverSend(item("mean", 7, sample));
    assert.deepEqual(await ws.nextMessage(), credit(7, 2));
    assert.deepEqual(await ws.nextMessage(), credit(7, 2));
    ws.serverSend(item("mean", 7, 5));
    ws.serverSend(end(7));
    assert.deepEqual(await ws.nextMessage(), { jsonrpc: "2.0", id: 1, result: 3 });
    await quiet();
    assert.equal(ws.sent.unread.length, 0, "no cancellation of an upload that ended");
  });

  test("an upload the handler leaves is cancelled once it answers; a bound id is refused", bounded, async (t) => {
    const { client, ws } = await setup(t);
    const taken = gate();
    client.expose("first", async ({ items }) => {
      const upload = client.receiveUpload(items);
      const step = await upload.next();
      taken.open();
      return step.value;
    });
    client.expose("again", ([id]) => {
      client.receiveUpload(id);
      return client.receiveUpload(id);
    });
    ws.serverSend({ jsonrpc: "2.0", id: 2, method: "first", params: { items: "u" } });
    assert.deepEqual(await ws.nextMessage(), credit("u", 256));
    ws.serverSend(item("first", "u", "a"));
    ws.serverSend(item("first", "u", "b"));
    await taken.promise;
    const messages = [await ws.nextMessage(), await ws.nextMessage()];
    assert.deepEqual(
      messages.sort((a, b) => ("id" in a) - ("id" in b)),
      [{ jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: "u" } }, { jsonrpc: "2.0", id: 2, result: "a" }],
    );
    ws.serverSend(item("first", "u", "dropped"));

    ws.serverSend({ jsonrpc: "2.0", id: 3, method: "again", params: [8] });
    assert.deepEqual(await ws.nextMessage(), credit(8, 256));
    const refused = [await ws.nextMessage(), await ws.nextMessage()];
    assert.deepEqual(refused.find((m) => m.id === 3).error.code, ErrorCode.INVALID_PARAMS);
    assert.deepEqual(refused.find((m) => !("id" in m)), { jsonrpc: "2.0", method: "$/stream.cancel", params: { subscription: 8 } });
    // Outside a handler there is no request to take an upload from.
    assert.throws(() => client.receiveUpload(9), TypeError);
  });

  test("a stream method's upload lives as long as its stream", bounded, async (t) => {
    const { client, ws } = await setup(t);
    client.exposeStream("doubled", ([id]) => {
      const numbers = client.receiveUpload(id);
      return (async function* () {
        for await (const n of numbers) yield 2 * n;
      })();
    });
    ws.serverSend({ jsonrpc: "2.0", id: 4, method: "doubled", params: ["in"] });
    assert.deepEqual(await ws.nextMessage(), credit("in", 256));
    const { result: out } = await ws.nextMessage();
    ws.serverSend(item("doubled", "in", 1));
    assert.deepEqual(await ws.nextMessage(), item("doubled", out, 2));
    ws.serverSend(item("doubled", "in", 5));
    assert.deepEqual(await ws.nextMessage(), item("doubled", out, 10));
    ws.serverSend(end("in"));
    assert.deepEqual(await ws.nextMessage(), end(out));
    await quiet();
    assert.equal(ws.sent.unread.length, 0);
  });

  test("maxStreams bounds the streams the page produces", bounded, async (t) => {
    const { client, ws } = await setup(t, { maxStreams: 1 });
    client.exposeStream("one", () => [1]);
    const first = client.call("x", [client.upload([1])]);
    await ws.nextMessage();
    await assert.rejects(client.call("x", [client.upload([2])]), { name: "LimitExceededError", limit: "maxStreams" });
    ws.serverSend({ jsonrpc: "2.0", id: 7, method: "one" });
    assert.deepEqual(await ws.nextMessage(), {
      jsonrpc: "2.0",
      id: 7,
      error: { code: ErrorCode.TOO_MANY_STREAMS, message: "Too many streams", data: "at most 1 streams" },
    });
    ws.serverSend({ jsonrpc: "2.0", id: 1, result: null });
    await first;
    ws.serverSend({ jsonrpc: "2.0", id: 8, method: "one" });
    const { result: id } = await ws.nextMessage();
    assert.deepEqual(await ws.nextMessage(), item("one", id, 1));
  });
});
