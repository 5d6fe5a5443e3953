// Compiled by tsc (never run): the declarations in birpc.d.ts describe a usable API.
//   npx -y -p typescript@5 tsc --noEmit --strict --target es2022 --module es2022 --moduleResolution bundler \
//     clients/js/birpc.d.ts clients/js/test/types-check.ts

import {
  CANCEL_METHOD,
  Client,
  CloseCode,
  DisconnectedError,
  ErrorCode,
  LimitExceededError,
  RpcError,
  StreamMethod,
  TimeoutError,
  connect,
  type CloseEvent,
  type Handler,
  type HandlerContext,
  type ItemStream,
  type ReconnectingEvent,
  type StreamHandler,
  type StreamId,
  type Upload,
} from "../birpc.js";

interface Point {
  x: number;
  y: number;
}

const add: Handler<[number, number], number> = ([a, b]) => a + b;

async function main(): Promise<void> {
  const client = new Client("ws://localhost:9000/", {
    methods: {
      still_there: async (_params: unknown, context: HandlerContext) => {
        context.signal.throwIfAborted();
        return context.client.connected;
      },
      add,
      refuse: () => {
        throw new RpcError(ErrorCode.INVALID_PARAMS, "no", { field: "name" });
      },
    },
    reconnect: { initialDelay: 200, maxDelay: 10_000, factor: 2, jitter: 0.3, maxAttempts: 10 },
    timeout: 5_000,
    whenDisconnected: "fail",
    highWaterMark: 512 * 1024,
    maxQueuedBytes: 4 * 1024 * 1024,
  });
  await client.ready;

  const difference: number = await client.call<number>("subtract", [42, 23]);
  const point = await client.call<Point>("echo", { value: { x: 1, y: 2 } }, { timeout: null });
  const px: number = point.x;
  const controller = new AbortController();
  const untyped = await client.call("sleep", [10], { signal: controller.signal, whenDisconnected: "wait" });
  void untyped;
  await client.notify("typing", ["lobby"]);

  // A batch's results are typed like Promise.all's.
  const [sum, text] = await client.batch((b) => [b.call<number>("sum", [1, 2, 3]), b.call<string>("echo", ["x"])]);
  const s: number = sum;
  const t: string = text;
  const nothing = await client.batch((b) => {
    b.notify("a");
    b.notify("b", { k: 1 });
  });
  const none: void = nothing;
  void none;

  client
    .expose("greet", (params: { name: string }) => `hello ${params.name}`)
    .expose<[string], Promise<number>>("len", async ([value]) => value.length);
  client.unexpose("greet");

  const off = client.on("disconnected", (event: CloseEvent) => {
    const code: number = event.code;
    const again: boolean = event.willReconnect;
    void code, again;
  });
  off();
  client.on("reconnecting", (event: ReconnectingEvent) => console.log(event.attempt, event.delay));
  client.on("error", (event) => console.log(event.error, event.method));
  const opened = await client.once("open");
  const type: "open" = opened.type;
  void type;

  try {
    await client.call("x");
  } catch (error) {
    if (error instanceof RpcError) {
      const code: number = error.code;
      const data: unknown = error.data;
      void code, data;
    } else if (error instanceof DisconnectedError) {
      const reason: string = error.reason;
      const code: number = error.code;
      void reason, code;
    } else if (error instanceof TimeoutError) {
      const ms: number = error.timeout;
      void ms;
    } else if (error instanceof LimitExceededError) {
      const limit: "maxPendingCalls" | "maxQueuedBytes" | "maxMessageSize" | "maxStreams" = error.limit;
      void limit;
    }
  }

  const typed = new RpcError<{ field: string }>(4000, "typed", { field: "f" });
  const field: string | undefined = typed.data?.field;
  void field;

  const other = await connect(() => new URL("ws://localhost:9001/"), {
    reconnect: false,
    // The browser's constructor fits the option.
    WebSocket: globalThis.WebSocket,
    protocols: ["birpc"],
  });
  const state: "idle" | "connecting" | "open" | "reconnecting" | "closed" = other.state;
  void state;
  await other.close(CloseCode.NORMAL, "done");
  await client.close(4000, "bye");
  void difference, px, s, t, CANCEL_METHOD;
}

void main;

// Streams: downloads, uploads, and stream methods of the page.
async function streams(client: Client): Promise<void> {
  const controller = new AbortController();
  const ticks: ItemStream<number> = client.stream<number>("ticks", [5, 10], {
    window: 16,
    signal: controller.signal,
    timeout: null,
    whenDisconnected: "fail",
  });
  for await (const tick of ticks) {
    const n: number = tick;
    if (n > 2) break;
  }
  const id: StreamId = await ticks.opened;
  const buffered: number = ticks.buffered + ticks.received + ticks.window;
  const state: "opening" | "open" | "ended" = ticks.state;
  const current: StreamId | undefined = ticks.id;
  ticks.cancel();
  await ticks.return();
  void id, buffered, state, current;

  const step = await client.stream<string>("words", { lang: "en" }).next();
  if (!step.done) {
    const word: string = step.value;
    void word;
  }
  for await (const item of client.stream("anything")) {
    const value: unknown = item;
    void value;
  }

  async function* numbers(): AsyncGenerator<number> {
    yield 1;
    yield 2;
  }
  const upload: Upload<number> = client.upload(numbers());
  const uploadId: number = upload.id;
  const sum: number = await client.call<number>("sum_upload", [upload]);
  const byName = await client.call<number>("sum_upload", { numbers: client.upload([1, 2, 3]) });
  void uploadId, sum, byName;

  client
    .exposeStream<[number], number>("count_to", async function* ([n], context) {
      for (let i = 0; i < n; i++) {
        context.signal.throwIfAborted();
        yield i;
      }
    })
    .exposeStream("letters", ({ text }: { text: string }) => text.split(""))
    .exposeStream("later", async () => [1, 2, 3]);
  client.expose<[number]>("mean", async ([id]) => {
    let sum = 0;
    for await (const sample of client.receiveUpload<number>(id, { window: 8 })) sum += sample;
    return sum;
  });
  const digits: StreamHandler<[number], string> = ([n]) => [String(n)];
  client.exposeStream("digits", digits);
  client.unexpose("digits");

  const open: "$/stream.open" = StreamMethod.OPEN;
  const tooMany: -32006 = ErrorCode.TOO_MANY_STREAMS;
  void open, tooMany;
  try {
    await client.stream("ticks").next();
  } catch (error) {
    if (error instanceof LimitExceededError && error.limit === "maxStreams") console.log(error.max);
  }
}

void streams;

// Misuse is a type error.
// @ts-expect-error params must be an array or an object
void new Client("ws://x/").call("echo", "text");
// @ts-expect-error whenDisconnected takes "wait" or "fail"
void new Client("ws://x/", { whenDisconnected: "later" });
// @ts-expect-error a call's result is not a string when typed as number
const wrong: string = await new Client("ws://x/").call<number>("n");
void wrong;
// @ts-expect-error unknown event
new Client("ws://x/").on("opened", () => {});
// @ts-expect-error an upload takes an iterable
new Client("ws://x/").upload(5);
// @ts-expect-error the items of a stream are of the type given
const wrongItems: AsyncIterable<string> = new Client("ws://x/").stream<number>("n");
void wrongItems;
// @ts-expect-error a stream method gives an iterable
new Client("ws://x/").exposeStream("bad", () => 5);
// @ts-expect-error the window is a number
new Client("ws://x/").stream("ticks", [], { window: "large" });
