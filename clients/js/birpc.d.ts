// Type declarations of birpc.js, the browser client of birpc (bidirectional JSON-RPC 2.0 over WebSocket).

/// <reference lib="es2018.asynciterable" />

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Params of a call or notification: by position (an array) or by name (an object). */
export type Params = readonly unknown[] | { readonly [name: string]: unknown };

/** An id of a request of the server, as it came. */
export type RequestId = string | number | null;

/** The error codes of JSON-RPC 2.0 and of birpc. */
export declare const ErrorCode: Readonly<{
  PARSE_ERROR: -32700;
  INVALID_REQUEST: -32600;
  METHOD_NOT_FOUND: -32601;
  INVALID_PARAMS: -32602;
  INTERNAL_ERROR: -32603;
  REQUEST_CANCELLED: -32800;
  APPLICATION_ERROR: -32000;
  /** The server finishes what it started but starts nothing new (graceful shutdown). */
  SHUTTING_DOWN: -32002;
  RESPONSE_TOO_LARGE: -32003;
  BATCH_TOO_LARGE: -32004;
  /**
   * The peer had every handler place taken and its queue of waiting requests full: the request did not
   * run and may be sent again after `error.data.retry_after_ms` milliseconds.
   */
  BUSY: -32005;
  /** The peer carries as many streams as it allows on the connection; no stream was opened. */
  TOO_MANY_STREAMS: -32006;
  /** The handler ran past the time the peer allows it (a timeout layer) and was stopped. */
  TIMED_OUT: -32007;
}>;

/** WebSocket close codes that birpc servers use. */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  PROTOCOL_ERROR: 1002;
  ABNORMAL: 1006;
  INVALID_DATA: 1007;
  POLICY: 1008;
  TOO_BIG: 1009;
  INTERNAL: 1011;
}>;

/** The notification that withdraws a call: `{"method": "$/cancelRequest", "params": {"id": ...}}`. */
export declare const CANCEL_METHOD: "$/cancelRequest";

/** The methods of the stream protocol (docs/streams.md); the client handles them itself. */
export declare const StreamMethod: Readonly<{
  /** `{"id": ID, "window": N}`: the request with that id opens a download granting credits. */
  OPEN: "$/stream.open";
  /** `{"subscription": S, "credit": N}`: the producer may send N more items. */
  CREDIT: "$/stream.credit";
  /** `{"subscription": S}` or `{"subscription": S, "error": ERROR}`: the stream ended. */
  END: "$/stream.end";
  /** `{"subscription": S}` or `[S]`: the consumer wants no more items. */
  CANCEL: "$/stream.cancel";
}>;

/** A stream id: a JSON number or string, chosen by the stream's producer. */
export type StreamId = string | number;

/** A JSON-RPC error object as it travels. */
export interface ErrorObject<D = unknown> {
  code: number;
  message: string;
  data?: D;
}

/**
 * A JSON-RPC error: a call rejects with one when the server answers an error (a Rust service's typed error
 * is in `data`), and a handler throws one to answer with that error.
 */
export declare class RpcError<D = unknown> extends Error {
  /** @param message defaults to the message the specification gives the code */
  constructor(code: number, message?: string, data?: D);
  readonly name: "RpcError";
  code: number;
  data: D | undefined;
  toJSON(): ErrorObject<D>;
  static fromJSON<D = unknown>(object: ErrorObject<D>): RpcError<D>;
}

/** The connection ended (or there was none): carries the close code and reason. */
export declare class DisconnectedError extends Error {
  constructor(code: number, reason: string, wasClean?: boolean);
  readonly name: "DisconnectedError";
  /** The WebSocket close code; 1006 when the connection was lost without one. */
  code: number;
  reason: string;
  wasClean: boolean;
}

/** A call got no answer within its timeout. */
export declare class TimeoutError extends Error {
  constructor(method: string, timeout: number);
  readonly name: "TimeoutError";
  /** The method, or "batch". */
  method: string;
  /** In milliseconds. */
  timeout: number;
}

/** A call or notification was refused at once because a limit was reached. */
export declare class LimitExceededError extends Error {
  constructor(limit: LimitExceededError["limit"], max: number, message: string);
  readonly name: "LimitExceededError";
  /** The option that was exceeded. */
  limit: "maxPendingCalls" | "maxQueuedBytes" | "maxMessageSize" | "maxStreams";
  /** Its value. */
  max: number;
}

/** The server answered something that is not a valid JSON-RPC response. */
export declare class ProtocolError extends Error {
  constructor(message: string, received?: unknown);
  readonly name: "ProtocolError";
  received: unknown;
}

/** What a handler of the page receives besides its params. */
export interface HandlerContext {
  /**
   * Aborted when the server withdraws the request (`$/cancelRequest`; the reason is an RpcError -32800)
   * or when the connection ends (the reason is a DisconnectedError).
   */
  signal: AbortSignal;
  /** The client, to call the server back. */
  client: Client;
  /** The method called. */
  method: string;
  /** The request's id; undefined for a notification. */
  id: RequestId | undefined;
  /** Whether this is a notification (no answer is sent). */
  notification: boolean;
}

/**
 * A method of the page: returns (or resolves to) the result, or throws (rejects with) an RpcError to answer
 * with that error; anything else thrown answers -32603 Internal error. `undefined` is answered as `null`.
 */
export type Handler<P = any, R = unknown> = (params: P, context: HandlerContext) => R | PromiseLike<R>;

/** Methods of the page by name. */
export type Methods = { [name: string]: Handler };

/**
 * A stream method of the page: gives the stream's items (an async iterable, an iterable, or a promise of
 * one). Throwing an RpcError (before or during the iteration) ends the stream with that error; anything
 * else thrown ends it with -32603. `context.signal` is aborted when the server cancels the stream or the
 * connection ends.
 */
export type StreamHandler<P = any, T = unknown> = (
  params: P,
  context: HandlerContext,
) => AsyncIterable<T> | Iterable<T> | PromiseLike<AsyncIterable<T> | Iterable<T>>;

export interface ReconnectOptions {
  /** The delay before the first retry, in ms. Default 250. */
  initialDelay?: number;
  /** The longest delay between retries, in ms. Default 30000. */
  maxDelay?: number;
  /** Each delay is the previous one times this (at least 1). Default 2. */
  factor?: number;
  /** A delay is shortened by a random fraction of itself, up to this (0 to 1). Default 0.5. */
  jitter?: number;
  /** Consecutive failed retries after which the client closes for good. Default Infinity. */
  maxAttempts?: number;
  /** Decides, for a connection that ended, whether to reconnect at all. Default: always. */
  shouldReconnect?: (event: { code: number; reason: string; wasClean: boolean }) => boolean;
}

/** What a WebSocket constructor must offer (the browser's, or a fake one in tests). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export interface ClientOptions {
  /** Methods the server can call. More can be added with {@link Client.expose}. */
  methods?: Methods;
  /** Subprotocols offered in the handshake. */
  protocols?: string | string[];
  /** The WebSocket constructor. Default `globalThis.WebSocket`. */
  WebSocket?: new (url: string | URL, protocols?: string | string[]) => WebSocketLike;
  /** Connect at once (default true); otherwise call {@link Client.connect}. */
  autoConnect?: boolean;
  /** The default timeout of a call, in ms; null (or Infinity) for none. Default 60000. */
  timeout?: number | null;
  /** How long a connection attempt may take, in ms; null for no limit. Default 10000. */
  connectTimeout?: number | null;
  /** Calls not yet settled, at most; a further call is refused at once. Default 1024. */
  maxPendingCalls?: number;
  /** The largest message sent, in bytes (UTF-8); null for no limit. Default 4 MiB (the server's default). */
  maxMessageSize?: number | null;
  /** Messages wait while the socket's bufferedAmount is above this, in bytes. Default 1 MiB. */
  highWaterMark?: number;
  /** The bytes that may wait to be sent; beyond, calls and notifications are refused. Default 8 MiB. */
  maxQueuedBytes?: number;
  /** How often, in ms, a waiting queue checks bufferedAmount again. Default 16. */
  pollInterval?: number;
  /** Calls made without a connection: "wait" for one (within their timeout, default) or "fail" at once. */
  whenDisconnected?: "wait" | "fail";
  /** Reconnecting: true (default settings, the default), false (off) or settings. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Streams at most, each way. Streams the page consumes (downloads, received uploads): a further
   * download fails with LimitExceededError, a further receiveUpload throws RpcError -32006. Streams the
   * page produces (uploads, streams of its stream methods): a call with a further upload is refused with
   * LimitExceededError, a further request of a stream method is answered -32006 Too many streams.
   * Default 1024.
   */
  maxStreams?: number;
}

export interface CallOptions {
  /** In ms; null (or Infinity) for none. Default: the client's `timeout`. */
  timeout?: number | null;
  /** Withdraws the call when aborted; the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's `whenDisconnected` for this call. */
  whenDisconnected?: "wait" | "fail";
}

export interface StreamOptions {
  /** The items the page holds at most, not yet taken: the credit granted (1 to 2^31 - 1). Default 256. */
  window?: number;
  /** Stops the stream when aborted (before or after it opens); the iteration throws the signal's reason. */
  signal?: AbortSignal;
  /** How long the stream request may wait for its answer, in ms; null for no limit. Default: the client's. */
  timeout?: number | null;
  /** Whether the request waits for a connection ("wait") or fails at once ("fail"). Default: the client's. */
  whenDisconnected?: "wait" | "fail";
}

/**
 * The items of a stream of the server: an async iterator (`for await (const item of stream)`), to be read
 * once. Leaving the loop early (break, return) cancels the stream.
 */
export interface ItemStream<T = unknown> extends AsyncIterableIterator<T> {
  next(): Promise<IteratorResult<T, undefined>>;
  /** Stops the stream (the server is told, items not taken are dropped); done. */
  return(value?: unknown): Promise<IteratorResult<T, any>>;
  [Symbol.asyncIterator](): ItemStream<T>;
  /** Stops the stream, as `return()` does. */
  cancel(): void;
  /** Resolves with the stream id once the server opened the stream; rejects with why it did not. */
  readonly opened: Promise<StreamId>;
  /** The server's stream id, once open. */
  readonly id: StreamId | undefined;
  /** "opening" until the server answers, then "open", then "ended" (items may still wait to be taken). */
  readonly state: "opening" | "open" | "ended";
  /** The credit the stream grants: the most items it holds untaken. */
  readonly window: number;
  /** Items received and not yet taken (at most `window`). */
  readonly buffered: number;
  /** Items received so far. */
  readonly received: number;
}

/**
 * An upload: items the page sends the server while one call runs. Put it in that call's params (anywhere:
 * it is encoded as its stream id).
 */
export interface Upload<T = unknown> {
  /** The stream id: unique among the streams the client produces. */
  readonly id: number;
  /** The stream id, as the upload travels in the params. */
  toJSON(): number;
}

/** The builder given to the function passed to {@link Client.batch}. */
export interface BatchBuilder {
  /** Adds a call; its promise settles once the batch is sent and answered. */
  call<T = any>(method: string, params?: Params): Promise<T>;
  /** Adds a notification. */
  notify(method: string, params?: Params): void;
  /** The number of entries so far. */
  readonly length: number;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface OpenEvent {
  type: "open";
}

export interface CloseEvent {
  type: "close";
  code: number;
  reason: string;
  wasClean: boolean;
  /** Whether the client will try to connect again (false: it is closed for good). */
  willReconnect: boolean;
}

export interface ReconnectingEvent {
  type: "reconnecting";
  /** 1 for the first retry after a connection ends, counting up while retries fail. */
  attempt: number;
  /** In ms, before this attempt. */
  delay: number;
}

export interface ClientErrorEvent {
  type: "error";
  /** A handler's failure (with its method), an error answer the server could not tie to a call, ... */
  error: unknown;
  method?: string;
}

export interface ClientEvents {
  open: OpenEvent;
  connected: OpenEvent;
  close: CloseEvent;
  disconnected: CloseEvent;
  reconnecting: ReconnectingEvent;
  error: ClientErrorEvent;
}

/** A birpc peer over one (re)connecting WebSocket. */
export declare class Client {
  /** @param url the server, or a function giving it for each connection attempt */
  constructor(url: string | URL | (() => string | URL), options?: ClientOptions);

  readonly state: ClientState;
  readonly connected: boolean;
  /** The current WebSocket, if any. */
  readonly socket: WebSocketLike | null;
  /** Calls not yet settled. */
  readonly pendingCalls: number;
  /** Bytes waiting in the send queue. */
  readonly queuedBytes: number;
  /** Resolves when a connection is open; rejects (DisconnectedError) if the client closes for good first. */
  readonly ready: Promise<void>;

  /** Starts connecting if idle or closed, retries at once if waiting to reconnect; returns `ready`. */
  connect(): Promise<void>;
  /**
   * Closes for good; pending calls reject at once with a DisconnectedError carrying `code` and `reason`.
   * Resolves when the socket has closed.
   */
  close(code?: number, reason?: string): Promise<void>;

  /** Calls a method of the server; resolves with its result. */
  call<T = any>(method: string, params?: Params, options?: CallOptions): Promise<T>;
  /** Sends a notification; resolves once handed to the socket. Never an unhandled rejection. */
  notify(method: string, params?: Params, options?: CallOptions): Promise<void>;
  /**
   * Opens a stream of the server (a download) and returns its items as an async iterator; the request
   * is sent at once. The iteration throws what ends the stream otherwise: the server's RpcError, a
   * DisconnectedError, a ProtocolError (the server sent beyond the window), the signal's reason, ...
   */
  stream<T = unknown>(method: string, params?: Params, options?: StreamOptions): ItemStream<T>;
  /**
   * Makes an upload of `items` for one call: `client.call("sum_upload", [client.upload(numbers)])`. Items
   * go as far as the server's credit allows; production stops when the server cancels the stream, when
   * the call settles, or when the connection ends.
   */
  upload<T>(items: AsyncIterable<T> | Iterable<T>): Upload<T>;
  /**
   * Takes an upload the server sends a handler of the page: call it on the param carrying the upload's
   * stream id, synchronously while the handler is called (as generated bindings do). The stream is
   * cancelled once the handler has answered (a stream method: once its stream ended), if not ended by then.
   * Throws a TypeError when no handler is being called, an RpcError -32602 for an id bound already.
   */
  receiveUpload<T = unknown>(id: unknown, options?: { window?: number }): ItemStream<T>;
  /**
   * Sends calls and notifications in one message; resolves with what `build` returned, awaited (an array
   * of promises becomes an array of results, like Promise.all).
   */
  batch<T extends readonly unknown[] | []>(
    build: (batch: BatchBuilder) => T,
    options?: CallOptions,
  ): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }>;
  batch<T>(build: (batch: BatchBuilder) => T, options?: CallOptions): Promise<Awaited<T>>;

  /** Exports a method for the server to call. */
  expose<P = any, R = unknown>(name: string, handler: Handler<P, R>): this;
  /** Exports several methods. */
  expose(methods: Methods): this;
  /** Exports a stream method for the server to call: it answers a stream id, then sends `items`. */
  exposeStream<P = any, T = unknown>(name: string, items: StreamHandler<P, T>): this;
  /** Stops exporting a method (or a stream method); whether it was exported. */
  unexpose(name: string): boolean;

  /** Listens to an event; returns a function removing the listener. */
  on<K extends keyof ClientEvents>(type: K, listener: (this: Client, event: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (this: Client, event: ClientEvents[K]) => void): void;
  /** The next event of a type. */
  once<K extends keyof ClientEvents>(type: K, options?: { signal?: AbortSignal }): Promise<ClientEvents[K]>;
}

/** Connects; resolves with the client once its connection is open. */
export declare function connect(url: string | URL | (() => string | URL), options?: ClientOptions): Promise<Client>;

/**
 * The raw text of the `id` member of the request object(s) of a JSON message (one per element of a batch),
 * used to echo ids exactly. Exported for tests.
 */
export declare function scanRawIds(text: string): string | undefined | (string | undefined)[];
