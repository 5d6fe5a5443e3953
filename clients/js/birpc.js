// birpc.js: the browser client of birpc, bidirectional JSON-RPC 2.0 over WebSocket.
//
// A dependency-free ES module: load it with <script type="module"> (or import it from Node 22+, or Node 20
// run with --experimental-websocket). The page and the server are symmetric peers on one WebSocket: the
// page calls the server's methods, and exports methods of its own that the server calls back.
// README.md next to this file describes the behaviour in full; birpc.d.ts declares the public API.

/** The error codes of JSON-RPC 2.0 and of birpc. */
export const ErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  REQUEST_CANCELLED: -32800,
  APPLICATION_ERROR: -32000,
  SHUTTING_DOWN: -32002,
  RESPONSE_TOO_LARGE: -32003,
  BATCH_TOO_LARGE: -32004,
  BUSY: -32005,
  TOO_MANY_STREAMS: -32006,
  TIMED_OUT: -32007,
});

/** WebSocket close codes that birpc servers use. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
});

/** The notification that withdraws a call. */
export const CANCEL_METHOD = "$/cancelRequest";

/** The methods of the stream protocol (docs/streams.md). */
export const StreamMethod = Object.freeze({
  OPEN: "$/stream.open",
  CREDIT: "$/stream.credit",
  END: "$/stream.end",
  CANCEL: "$/stream.cancel",
});

/** The most credit a producer holds, and the largest window (2^31 - 1). */
const MAX_CREDIT = 2 ** 31 - 1;

/** The announcements ($/stream.open) kept that no request has claimed yet. */
const MAX_ANNOUNCEMENTS = 16;

/** @type {Map<number, string>} */
const DEFAULT_MESSAGES = new Map([
  [ErrorCode.PARSE_ERROR, "Parse error"],
  [ErrorCode.INVALID_REQUEST, "Invalid Request"],
  [ErrorCode.METHOD_NOT_FOUND, "Method not found"],
  [ErrorCode.INVALID_PARAMS, "Invalid params"],
  [ErrorCode.INTERNAL_ERROR, "Internal error"],
  [ErrorCode.REQUEST_CANCELLED, "Request cancelled"],
  [ErrorCode.APPLICATION_ERROR, "Application error"],
  [ErrorCode.SHUTTING_DOWN, "Shutting down"],
  [ErrorCode.RESPONSE_TOO_LARGE, "Response too large"],
  [ErrorCode.BATCH_TOO_LARGE, "Batch too large"],
  [ErrorCode.BUSY, "Busy"],
  [ErrorCode.TOO_MANY_STREAMS, "Too many streams"],
  [ErrorCode.TIMED_OUT, "Timed out"],
]);

// WebSocket.readyState values (read as numbers so that any WebSocket-like object works).
const CONNECTING = 0;
const OPEN = 1;

const MiB = 1024 * 1024;

const DEFAULTS = Object.freeze({
  timeout: 60_000,
  connectTimeout: 10_000,
  maxPendingCalls: 1024,
  maxMessageSize: 4 * MiB,
  highWaterMark: 1 * MiB,
  maxQueuedBytes: 8 * MiB,
  pollInterval: 16,
  whenDisconnected: "wait",
  window: 256,
  maxStreams: 1024,
});

/**
 * @typedef {object} ReconnectSettings
 * @property {number} initialDelay
 * @property {number} maxDelay
 * @property {number} factor
 * @property {number} jitter
 * @property {number} maxAttempts
 * @property {(event: {code: number, reason: string, wasClean: boolean}) => boolean} [shouldReconnect]
 */

/** @type {Readonly<ReconnectSettings>} */
const RECONNECT_DEFAULTS = Object.freeze({
  initialDelay: 250,
  maxDelay: 30_000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
});

// ---------------------------------------------------------------------------------------------------------
// Errors

/**
 * A JSON-RPC error object: what a call of the server rejects with when the server answers an error, and
 * what a handler of the page throws to answer with an error of its choice.
 */
export class RpcError extends Error {
  /**
   * @param {number} code an integer; see {@link ErrorCode}
   * @param {string} [message] defaults to the message the specification gives the code
   * @param {unknown} [data] any JSON value; omitted from the wire when undefined
   */
  constructor(code, message, data) {
    if (!Number.isInteger(code)) {
      throw new TypeError(`an RpcError code must be an integer, not ${String(code)}`);
    }
    super(message ?? DEFAULT_MESSAGES.get(code) ?? "Error");
    this.name = "RpcError";
    /** @type {number} */
    this.code = code;
    /** @type {unknown} */
    this.data = data;
  }

  /** The error object as it travels: `{code, message, data?}`. */
  toJSON() {
    /** @type {{code: number, message: string, data?: unknown}} */
    const object = { code: this.code, message: this.message };
    if (this.data !== undefined) object.data = this.data;
    return object;
  }

  /**
   * An RpcError from an error object received on the wire.
   * @param {{code: number, message: string, data?: unknown}} object
   */
  static fromJSON(object) {
    return new RpcError(object.code, object.message, object.data);
  }
}

/** A call failed because the connection ended, or because there was none (and the call could not wait). */
export class DisconnectedError extends Error {
  /**
   * @param {number} code the WebSocket close code (1006 when the connection was lost without one)
   * @param {string} reason the close reason
   * @param {boolean} [wasClean]
   */
  constructor(code, reason, wasClean = false) {
    super(`disconnected (code ${code}${reason ? `: ${reason}` : ""})`);
    this.name = "DisconnectedError";
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
  }
}

/** A call got no answer within its timeout; the server was sent `$/cancelRequest` if it had the call. */
export class TimeoutError extends Error {
  /**
   * @param {string} method
   * @param {number} timeout in milliseconds
   */
  constructor(method, timeout) {
    super(`${method} got no answer within ${timeout} ms`);
    this.name = "TimeoutError";
    this.method = method;
    this.timeout = timeout;
  }
}

/** A call or notification was refused at once because a limit of the client was reached. */
export class LimitExceededError extends Error {
  /**
   * @param {"maxPendingCalls" | "maxQueuedBytes" | "maxMessageSize" | "maxStreams"} limit the option that was exceeded
   * @param {number} max its value
   * @param {string} message
   */
  constructor(limit, max, message) {
    super(message);
    this.name = "LimitExceededError";
    this.limit = limit;
    this.max = max;
  }
}

/** The server answered something that is not a valid JSON-RPC response. */
export class ProtocolError extends Error {
  /**
   * @param {string} message
   * @param {unknown} [received] what was received
   */
  constructor(message, received) {
    super(message);
    this.name = "ProtocolError";
    this.received = received;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** @param {unknown} value */
function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** @param {unknown} value */
function isId(value) {
  return value === null || typeof value === "string" || typeof value === "number";
}

/**
 * The number of bytes of `text` in UTF-8.
 * @param {string} text
 */
function utf8Length(text) {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return text.length;
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) length += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return length;
}

/**
 * The raw JSON text of the `id` member of the request object(s) of a message, so that ids are echoed
 * exactly as received (a large integer such as 12345678901234567890 loses its digits through JSON.parse).
 * For a single object, its id text (or undefined); for an array, one entry per element. `text` must be
 * valid JSON (it was parsed already).
 * @param {string} text
 * @returns {string | undefined | (string | undefined)[]}
 */
export function scanRawIds(text) {
  let i = 0;
  const nested = /["[\]{}]/g;
  const scalarEnd = /[,}\] \t\n\r]/g;
  const skipWhitespace = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else return;
    }
  };
  const skipString = () => {
    i++;
    for (;;) {
      const quote = text.indexOf('"', i);
      let backslashes = 0;
      while (text.charCodeAt(quote - 1 - backslashes) === 92) backslashes++;
      i = quote + 1;
      if (backslashes % 2 === 0) return;
    }
  };
  const skipValue = () => {
    const c = text[i];
    if (c === '"') return skipString();
    if (c === "{" || c === "[") {
      let depth = 0;
      for (;;) {
        nested.lastIndex = i;
        const found = /** @type {RegExpExecArray} */ (nested.exec(text));
        i = found.index;
        const ch = text[i];
        if (ch === '"') {
          skipString();
          continue;
        }
        i++;
        if (ch === "{" || ch === "[") depth++;
        else if (--depth === 0) return;
      }
    }
    scalarEnd.lastIndex = i;
    const end = scalarEnd.exec(text);
    i = end ? end.index : text.length;
  };
  const objectId = () => {
    i++;
    /** @type {string | undefined} */
    let id;
    for (;;) {
      skipWhitespace();
      if (text[i] === "}") {
        i++;
        return id;
      }
      const keyStart = i;
      skipString();
      const key = text.slice(keyStart, i);
      skipWhitespace();
      i++; // the colon
      skipWhitespace();
      const valueStart = i;
      skipValue();
      if (key === '"id"' || (key.includes("\\") && JSON.parse(key) === "id")) id = text.slice(valueStart, i);
      skipWhitespace();
      if (text[i] === ",") i++;
    }
  };
  skipWhitespace();
  if (text[i] === "{") return objectId();
  if (text[i] !== "[") return undefined;
  i++;
  /** @type {(string | undefined)[]} */
  const ids = [];
  for (;;) {
    skipWhitespace();
    if (text[i] === "]" || i >= text.length) return ids;
    if (text[i] === "{") ids.push(objectId());
    else {
      skipValue();
      ids.push(undefined);
    }
    skipWhitespace();
    if (text[i] === ",") i++;
  }
}

/**
 * The text of a success response.
 * @param {string} rawId
 * @param {string} resultJson
 */
function resultFrame(rawId, resultJson) {
  return `{"jsonrpc":"2.0","id":${rawId},"result":${resultJson}}`;
}

/**
 * The text of an error response.
 * @param {string} rawId
 * @param {number} code
 * @param {string} [message]
 * @param {unknown} [data]
 */
function errorFrame(rawId, code, message, data) {
  return `{"jsonrpc":"2.0","id":${rawId},"error":${errorJson(code, message, data)}}`;
}

/**
 * The text of an error object; data that cannot be encoded is replaced by a note saying so.
 * @param {number} code
 * @param {string} [message]
 * @param {unknown} [data]
 */
function errorJson(code, message, data) {
  /** @type {{code: number, message: string, data?: unknown}} */
  const error = { code, message: message ?? DEFAULT_MESSAGES.get(code) ?? "Error" };
  if (data !== undefined) error.data = data;
  try {
    return JSON.stringify(error);
  } catch (encodeError) {
    return JSON.stringify({
      code,
      message: error.message,
      data: `the error data could not be encoded: ${describe(encodeError)}`,
    });
  }
}

/** @param {unknown} error */
function describe(error) {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return "unknown error";
  }
}

/** @param {unknown} id a parsed id; keys a map of requests by id */
function idKey(id) {
  return typeof id === "string" ? `s${id}` : `v${String(id)}`;
}

/**
 * Encodes params; undefined stays undefined (the member is omitted).
 * @param {unknown} params
 * @returns {string | undefined}
 */
function encodeParams(params) {
  if (params === undefined) return undefined;
  if (!Array.isArray(params) && !isPlainObject(params)) {
    throw new TypeError("params must be an array (by position), an object (by name) or undefined");
  }
  return JSON.stringify(params);
}

/**
 * Reports an error thrown by an event listener without breaking the client.
 * @param {unknown} error
 */
function reportListenerError(error) {
  const report = /** @type {any} */ (globalThis).reportError;
  if (typeof report === "function") report(error);
  else
    setTimeout(() => {
      throw error;
    }, 0);
}

/**
 * @template T
 * @returns {{promise: Promise<T>, resolve: (value: T) => void, reject: (error: unknown) => void}}
 */
function deferred() {
  /** @type {any} */
  let resolve;
  /** @type {any} */
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Marks a promise as handled (no unhandled-rejection report); awaiting it still sees its rejection.
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
function handled(promise) {
  promise.catch(() => {});
  return promise;
}

// ---------------------------------------------------------------------------------------------------------
// Outgoing messages
//
// An Envelope is one outgoing frame of the page: a call, a notification or a batch. It waits in the outbox
// while the page is disconnected or the socket is over its high-water mark, gets ids (per connection) when
// it is handed to the socket, and settles when every call of it is answered, withdrawn or lost.

/**
 * One call or notification of an envelope.
 * @typedef {object} Part
 * @property {string} method
 * @property {string | undefined} paramsJson
 * @property {boolean} notification
 * @property {number} [id] given when sent
 * @property {(value: unknown) => void} resolve
 * @property {(error: unknown) => void} reject
 * @property {boolean} settled
 * @property {Envelope} envelope
 * @property {Download} [download] the stream a stream request opens
 * @property {Producer[]} [uploads] the uploads of a call, produced while it runs
 */

/**
 * @typedef {object} Envelope
 * @property {Part[]} parts
 * @property {boolean} batch
 * @property {number} bytes
 * @property {number} calls the number of call parts
 * @property {"new" | "queued" | "sent" | "settled"} state
 * @property {Connection | null} connection
 * @property {"wait" | "fail"} whenDisconnected
 * @property {ReturnType<typeof setTimeout> | null} timer
 * @property {AbortSignal | undefined} signal
 * @property {(() => void) | null} onAbort
 * @property {ReturnType<typeof deferred<void>> | null} sent resolved when handed to the socket
 */

/**
 * @param {Part[]} parts
 * @param {boolean} batch
 * @returns {Envelope}
 */
function envelope(parts, batch) {
  let bytes = batch ? 2 : 0;
  let calls = 0;
  for (const part of parts) {
    bytes += 48 + utf8Length(part.method) + (part.paramsJson === undefined ? 0 : utf8Length(part.paramsJson));
    if (!part.notification) calls++;
  }
  /** @type {Envelope} */
  const env = {
    parts,
    batch,
    bytes,
    calls,
    state: "new",
    connection: null,
    whenDisconnected: "wait",
    timer: null,
    signal: undefined,
    onAbort: null,
    sent: null,
  };
  for (const part of parts) part.envelope = env;
  return env;
}

/**
 * @param {string} method
 * @param {unknown} params
 * @param {boolean} notification
 * @param {boolean} [acceptUploads] whether the params may hold uploads (only a call's may)
 * @returns {{part: Part, promise: Promise<any>, uploads: Upload[]}}
 */
function makePart(method, params, notification, acceptUploads = false) {
  if (typeof method !== "string") throw new TypeError("the method name must be a string");
  /** @type {string | undefined} */
  let paramsJson;
  // Upload objects met while encoding report themselves (see Upload#toJSON), however deep.
  /** @type {Upload[]} */
  const uploads = [];
  collecting = uploads;
  try {
    paramsJson = encodeParams(params);
  } finally {
    collecting = null;
  }
  if (uploads.length > 0 && !acceptUploads) {
    throw new TypeError("an upload can only be a param of client.call (not of a notification, a batch or a stream)");
  }
  const { promise, resolve, reject } = deferred();
  // A notification's own promise is not given out (the envelope's `sent` is): never unhandled.
  if (notification) handled(promise);
  /** @type {Part} */
  const part = {
    method,
    paramsJson,
    notification,
    resolve,
    reject,
    settled: false,
    envelope: /** @type {any} */ (null),
  };
  return { part, promise, uploads };
}

/** @type {Upload[] | null} where the uploads met while makePart encodes params go */
let collecting = null;

/**
 * @param {Part} part
 * @param {number | undefined} id
 */
function partText(part, id) {
  const idText = id === undefined ? "" : `"id":${id},`;
  const params = part.paramsJson === undefined ? "" : `,"params":${part.paramsJson}`;
  return `{"jsonrpc":"2.0",${idText}"method":${JSON.stringify(part.method)}${params}}`;
}

/**
 * One WebSocket and what belongs to it.
 * @typedef {object} Connection
 * @property {WebSocket} ws
 * @property {boolean} open
 * @property {boolean} ended
 * @property {number} nextId
 * @property {Map<number, Part>} inflight our calls awaiting answers, by id
 * @property {number[][]} batches the ids of the calls of each batch sent, oldest first, for an error the
 *   server answers with id null to a whole batch; a batch leaves once one of its calls has been answered
 * @property {Map<string, {controller: AbortController, settle: (answer: string | null | typeof CANCELLED) => void}>} running
 *   the server's requests being handled, by id
 * @property {string[]} urgent answers and cancellations, sent before the outbox
 * @property {Promise<void>} notifications the chain running incoming notifications in order
 * @property {AbortController} controller aborted when the connection ends
 * @property {ReturnType<typeof setTimeout> | null} connectTimer
 * @property {ReturnType<typeof setTimeout> | null} errorTimer
 * @property {(() => void)[]} onClosed called when the socket reports it closed
 * @property {Map<string, Download>} downloads the open streams the page consumes (downloads, and uploads
 *   the server sends the page's handlers), by the JSON text of their (the server's) stream ids
 * @property {Map<string, Producer>} produced the streams the page produces, by the JSON text of their ids
 * @property {Map<string, number>} announcements the windows `$/stream.open` announced for requests not
 *   yet received, by idKey of the request id (oldest first)
 * @property {Set<number>} orphans ids of stream requests withdrawn before their answer: a stream they
 *   open after all is cancelled
 * @property {(() => void)[]} roomWaiters producers waiting for the queues to empty and the socket's
 *   buffer to fall under the high-water mark
 */

// ---------------------------------------------------------------------------------------------------------
// Streams (docs/streams.md)
//
// A Download is a stream of the server's items that the page consumes (client.stream); a Producer is a
// stream the page produces: an upload of one of its calls (client.upload), or the items of one of its
// stream methods (client.exposeStream) that the server called.

/**
 * The key of a stream id in the maps of a connection: its JSON text; null for what is not a stream id.
 * @param {unknown} id
 * @returns {string | null}
 */
function streamKey(id) {
  if (typeof id === "string" || (typeof id === "number" && Number.isFinite(id))) return JSON.stringify(id);
  return null;
}

/**
 * The stream named by the params of `$/stream.cancel`: `{"subscription": S}` or `[S]`.
 * @param {unknown} params
 */
function cancelledStream(params) {
  if (isPlainObject(params)) return /** @type {any} */ (params).subscription;
  if (Array.isArray(params)) return params[0];
  return undefined;
}

/**
 * The text of a notification.
 * @param {string} method
 * @param {string} paramsJson
 */
function notificationFrame(method, paramsJson) {
  return `{"jsonrpc":"2.0","method":${JSON.stringify(method)},"params":${paramsJson}}`;
}

/**
 * @param {string} key the JSON text of a stream id
 * @param {number} credit
 */
function creditFrame(key, credit) {
  return notificationFrame(StreamMethod.CREDIT, `{"subscription":${key},"credit":${credit}}`);
}

/** @param {string} key the JSON text of a stream id */
function cancelFrame(key) {
  return notificationFrame(StreamMethod.CANCEL, `{"subscription":${key}}`);
}

/**
 * The error object (as text) a producer ends its stream with when its items fail: an RpcError's own, or
 * -32603 with the error as its message.
 * @param {unknown} error
 */
function producerErrorJson(error) {
  if (error instanceof RpcError) return errorJson(error.code, error.message, error.data);
  let message;
  try {
    message = String(error);
  } catch {
    message = "Internal error";
  }
  return errorJson(ErrorCode.INTERNAL_ERROR, message);
}

/** An AbortError, as fetch rejects with. */
function abortError(/** @type {string} */ message) {
  return new DOMException(message, "AbortError");
}

/**
 * The iterator of an async or sync iterable, as an async one. `close` ends it early (its `return`), never
 * throwing.
 * @typedef {{next: () => Promise<IteratorResult<unknown>>, close: () => void}} ItemSource
 */

/** @param {any} items */
function isIterable(items) {
  return (
    items !== null &&
    items !== undefined &&
    (typeof items[Symbol.asyncIterator] === "function" || typeof items[Symbol.iterator] === "function")
  );
}

/**
 * @param {any} items an async iterable or an iterable
 * @returns {ItemSource}
 */
function openItems(items) {
  if (!isIterable(items)) throw new TypeError("a stream's items must be an async iterable or an iterable");
  const isAsync = typeof items[Symbol.asyncIterator] === "function";
  const iterator = isAsync ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
  if (iterator === null || typeof iterator !== "object" || typeof iterator.next !== "function") {
    throw new TypeError("the iterable gave no iterator");
  }
  return {
    // A sync iterable's values are awaited, as for await does.
    next: isAsync
      ? async () => iterator.next()
      : async () => {
          const step = iterator.next();
          return step.done ? step : { done: false, value: await step.value };
        },
    close: () => {
      try {
        const result = typeof iterator.return === "function" ? iterator.return() : undefined;
        if (result && typeof result.then === "function") handled(Promise.resolve(result));
      } catch {
        // Closing is a courtesy: its failure changes nothing.
      }
    },
  };
}

/**
 * A stream the page produces.
 * @typedef {object} Producer
 * @property {number} id the page's stream id
 * @property {string} key its JSON text
 * @property {string} method the method its items travel under
 * @property {unknown} items the iterable
 * @property {ItemSource | null} source opened at the first item
 * @property {number} credit the items it may send (Infinity when the consumer grants no credits)
 * @property {boolean} stopped
 * @property {Connection | null} connection
 * @property {(() => void) | null} wake wakes it when it waits for credit
 * @property {AbortController | null} controller a stream method's: aborted when the stream stops early
 * @property {Download[]} uploads a stream method's: the uploads its handler took, cancelled when it ends
 */

/**
 * @param {number} id
 * @param {unknown} items
 * @param {string} method
 * @returns {Producer}
 */
function producer(id, items, method) {
  return {
    id,
    key: String(id),
    method,
    items,
    source: null,
    credit: 0,
    stopped: false,
    connection: null,
    wake: null,
    controller: null,
    uploads: [],
  };
}

/** @type {WeakMap<Upload, {client: Client, producer: Producer, used: boolean}>} */
const UPLOADS = new WeakMap();

/**
 * A stream the page uploads while one of its calls runs: made by {@link Client#upload}, put in the call's
 * params (anywhere), where it is encoded as its stream id.
 */
class Upload {
  #id;

  /** @param {number} id */
  constructor(id) {
    this.#id = id;
  }

  /** The stream id, unique among the streams the client produces. */
  get id() {
    return this.#id;
  }

  /** The stream id: what the upload is in the call's params. */
  toJSON() {
    collecting?.push(this);
    return this.#id;
  }
}

/** @type {WeakMap<Function, Function>} the stream methods of the page: their stand-in handler to the function giving the items */
const STREAM_METHODS = new WeakMap();

/**
 * What the client does for a download on behalf of its ItemStream.
 * @typedef {object} DownloadHooks
 * @property {(credit: number) => void} grant sends `$/stream.credit`
 * @property {(cancelRemote: boolean) => void} closed the stream ended; the producer is to be told when
 *   `cancelRemote`
 */

/**
 * What the client tells an ItemStream.
 * @typedef {object} DownloadControl
 * @property {(id: string | number) => boolean} open the server answered the stream id; false if the stream
 *   had ended
 * @property {(value: unknown, message: unknown) => void} item an item arrived
 * @property {(error: unknown, immediate: boolean, cancelRemote: boolean) => void} end the stream ends, with
 *   an error unless `error` is undefined; `immediate` drops the items not yet taken
 */

/**
 * A download of the page.
 * @typedef {object} Download
 * @property {ItemStream<any>} stream
 * @property {DownloadControl} control
 * @property {Part | null} part the request, while it is not answered
 * @property {Connection | null} connection once open
 * @property {string | null} key the JSON text of the stream id, once open
 * @property {AbortSignal | undefined} signal
 * @property {(() => void) | null} onAbort
 * @property {boolean} counted whether it counts against maxStreams
 */

/**
 * The items of a stream of the server, as an async iterator: what {@link Client#stream} returns.
 * @template T
 */
class ItemStream {
  #window;
  /** @type {DownloadHooks} */
  #hooks;
  /** @type {unknown[]} the items received and not yet taken, from #head on */
  #buffer = [];
  #head = 0;
  /** @type {{resolve: (step: IteratorResult<any, undefined>) => void, reject: (error: unknown) => void}[]} */
  #waiters = [];
  /** @type {"opening" | "open" | "ended"} */
  #state = "opening";
  #failed = false;
  /** @type {unknown} */
  #error = undefined;
  #errorTaken = false;
  #credit;
  #taken = 0;
  #received = 0;
  /** @type {string | number | undefined} */
  #id = undefined;
  /** @type {ReturnType<typeof deferred<string | number>>} */
  #opened = deferred();

  /**
   * @param {number} window
   * @param {DownloadHooks} hooks
   * @param {DownloadControl} control filled in here: how the client drives this stream
   */
  constructor(window, hooks, control) {
    this.#window = window;
    this.#credit = window;
    this.#hooks = hooks;
    handled(this.#opened.promise);
    control.open = (id) => {
      if (this.#state !== "opening") return false;
      this.#state = "open";
      this.#id = id;
      this.#opened.resolve(id);
      return true;
    };
    control.item = (value, message) => this.#item(value, message);
    control.end = (error, immediate, cancelRemote) => this.#end(error, immediate, cancelRemote);
  }

  /** The stream id the server gave, once open. */
  get id() {
    return this.#id;
  }

  /** Resolves with the stream id once the server has opened the stream; rejects if it did not. */
  get opened() {
    return this.#opened.promise;
  }

  /** "opening" (the request is not answered yet), "open" or "ended" (items may still wait to be taken). */
  get state() {
    return this.#state;
  }

  /** The most items the stream holds that were not taken: the credit granted at most. */
  get window() {
    return this.#window;
  }

  /** The items received and not yet taken. */
  get buffered() {
    return this.#buffer.length - this.#head;
  }

  /** The items received so far. */
  get received() {
    return this.#received;
  }

  /**
   * The next item.
   * @returns {Promise<IteratorResult<T, undefined>>}
   */
  next() {
    if (this.#head < this.#buffer.length) {
      const value = /** @type {T} */ (this.#take());
      this.#took();
      return Promise.resolve({ value, done: false });
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.#state === "ended") this.#finish(waiter);
      else this.#waiters.push(waiter);
    });
  }

  /**
   * Stops the stream (what `break` out of `for await` does): the server is told to stop, items not taken
   * are dropped, and the iteration is done.
   * @param {unknown} [value]
   * @returns {Promise<IteratorResult<T, any>>}
   */
  return(value) {
    this.cancel();
    return Promise.resolve({ value, done: true });
  }

  /** Stops the stream, as `return()` does: the iteration is done, whatever was still to come. */
  cancel() {
    this.#end(undefined, true, true);
    // Ended before (by the server): what was still to be taken is dropped all the same.
    this.#buffer.length = 0;
    this.#head = 0;
    this.#errorTaken = true;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  #take() {
    const value = this.#buffer[this.#head];
    this.#buffer[this.#head++] = undefined;
    if (this.#head === this.#buffer.length) {
      this.#buffer.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#buffer.length) {
      this.#buffer.splice(0, this.#head);
      this.#head = 0;
    }
    return value;
  }

  /**
   * @param {unknown} value
   * @param {unknown} message
   */
  #item(value, message) {
    if (this.#state !== "open") return;
    if (this.#credit <= 0) {
      const error = new ProtocolError(
        `the producer sent more than the window of ${this.#window} items (overrun); the stream was cancelled`,
        message,
      );
      this.#end(error, false, true);
      return;
    }
    this.#credit--;
    this.#received++;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#took();
      waiter.resolve({ value, done: false });
    } else this.#buffer.push(value);
  }

  /** An item was taken: once half a window was, they are granted again. */
  #took() {
    if (this.#state !== "open") return;
    this.#taken++;
    if (this.#taken * 2 >= this.#window) {
      const credit = this.#taken;
      this.#taken = 0;
      this.#credit += credit;
      this.#hooks.grant(credit);
    }
  }

  /**
   * @param {unknown} error undefined for a normal end
   * @param {boolean} immediate drops the items not yet taken
   * @param {boolean} cancelRemote
   */
  #end(error, immediate, cancelRemote) {
    if (this.#state === "ended") return;
    const opening = this.#state === "opening";
    this.#state = "ended";
    if (error !== undefined) {
      this.#failed = true;
      this.#error = error;
    }
    if (immediate) {
      this.#buffer.length = 0;
      this.#head = 0;
    }
    if (opening) this.#opened.reject(error ?? abortError("the stream was cancelled before it opened"));
    this.#hooks.closed(cancelRemote);
    // Waiters wait only when no item does.
    for (const waiter of this.#waiters.splice(0)) this.#finish(waiter);
  }

  /**
   * Settles a waiter of an ended stream without items left: the error once, then done.
   * @param {{resolve: (step: IteratorResult<any, undefined>) => void, reject: (error: unknown) => void}} waiter
   */
  #finish(waiter) {
    if (this.#failed && !this.#errorTaken) {
      this.#errorTaken = true;
      waiter.reject(this.#error);
    } else waiter.resolve({ value: undefined, done: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The client

/**
 * Builds a batch; given to the function passed to {@link Client#batch}.
 */
class BatchBuilder {
  /** @type {Part[]} */
  #parts = [];
  #sealed = false;

  /**
   * Adds a call to the batch.
   * @param {string} method
   * @param {unknown[] | Record<string, unknown>} [params]
   * @returns {Promise<any>} its answer, once the batch is sent and answered
   */
  call(method, params) {
    this.#check();
    const { part, promise } = makePart(method, params, false);
    this.#parts.push(part);
    return handled(promise);
  }

  /**
   * Adds a notification to the batch.
   * @param {string} method
   * @param {unknown[] | Record<string, unknown>} [params]
   */
  notify(method, params) {
    this.#check();
    this.#parts.push(makePart(method, params, true).part);
  }

  /** The number of entries so far. */
  get length() {
    return this.#parts.length;
  }

  #check() {
    if (this.#sealed) throw new Error("this batch was already sent; add entries inside the batch function");
  }

  /** @internal */
  _seal() {
    this.#sealed = true;
    return this.#parts;
  }
}

/**
 * A birpc peer over one (re)connecting WebSocket.
 */
export class Client {
  /** @type {string | URL | (() => string | URL)} */
  #url;
  /** @type {string | string[] | undefined} */
  #protocols;
  /** @type {any} */
  #WebSocket;
  /** @type {Map<string, Function>} */
  #methods = new Map();
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();

  #timeout;
  #connectTimeout;
  #maxPendingCalls;
  #maxMessageSize;
  #highWaterMark;
  #maxQueuedBytes;
  #pollInterval;
  #maxStreams;
  /** @type {"wait" | "fail"} */
  #whenDisconnected;
  /** @type {ReconnectSettings | null} */
  #reconnect;

  /** @type {"idle" | "connecting" | "open" | "reconnecting" | "closed"} */
  #state = "idle";
  /** @type {Connection | null} */
  #connection = null;
  /** @type {Envelope[]} */
  #outbox = [];
  #queuedBytes = 0;
  #pendingCalls = 0;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #reconnectTimer = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #pollTimer = null;
  /** @type {{code: number, reason: string, wasClean: boolean} | null} */
  #lastClose = null;
  /** @type {{resolve: () => void, reject: (error: unknown) => void}[]} */
  #readyWaiters = [];
  /** The last stream id the page gave (to an upload or a stream of its stream methods). */
  #lastStreamId = 0;
  /** The downloads not ended (opening or open). */
  #downloads = 0;
  /** The streams the page produces: uploads of calls not settled, streams of its stream methods. */
  #producing = 0;
  /** @type {WeakMap<Promise<string | null>, () => void>} what to do once an answer is handed to the socket */
  #afterAnswer = new WeakMap();
  /** @type {{connection: Connection, uploads: Download[]} | null} the request whose handler is being called */
  #binding = null;

  /**
   * @param {string | URL | (() => string | URL)} url the server, or a function giving it for each
   *   connection attempt
   * @param {import("./birpc.js").ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#protocols = options.protocols;
    this.#WebSocket = options.WebSocket ?? /** @type {any} */ (globalThis).WebSocket;
    if (typeof this.#WebSocket !== "function") {
      throw new TypeError("no WebSocket: pass the WebSocket option (a constructor)");
    }
    this.#timeout = optionalPositive("timeout", options.timeout, DEFAULTS.timeout);
    this.#connectTimeout = optionalPositive("connectTimeout", options.connectTimeout, DEFAULTS.connectTimeout);
    this.#maxPendingCalls = positive("maxPendingCalls", options.maxPendingCalls, DEFAULTS.maxPendingCalls);
    this.#maxMessageSize = optionalPositive("maxMessageSize", options.maxMessageSize, DEFAULTS.maxMessageSize);
    this.#highWaterMark = nonNegative("highWaterMark", options.highWaterMark, DEFAULTS.highWaterMark);
    this.#maxQueuedBytes = nonNegative("maxQueuedBytes", options.maxQueuedBytes, DEFAULTS.maxQueuedBytes);
    this.#pollInterval = nonNegative("pollInterval", options.pollInterval, DEFAULTS.pollInterval);
    this.#maxStreams = positive("maxStreams", options.maxStreams, DEFAULTS.maxStreams);
    this.#whenDisconnected = disconnectedMode(options.whenDisconnected ?? DEFAULTS.whenDisconnected);
    const reconnect = options.reconnect ?? true;
    if (reconnect === false) this.#reconnect = null;
    else {
      /** @type {ReconnectSettings} */
      const settings = { ...RECONNECT_DEFAULTS };
      if (reconnect !== true) {
        // Fields left undefined keep their defaults.
        for (const [key, value] of Object.entries(reconnect)) {
          if (value !== undefined) /** @type {any} */ (settings)[key] = value;
        }
      }
      positive("reconnect.initialDelay", settings.initialDelay, 1);
      positive("reconnect.maxDelay", settings.maxDelay, 1);
      if (!(settings.factor >= 1)) throw new RangeError("reconnect.factor must be at least 1");
      if (!(settings.jitter >= 0 && settings.jitter <= 1)) throw new RangeError("reconnect.jitter must be in [0, 1]");
      if (!(settings.maxAttempts >= 0)) throw new RangeError("reconnect.maxAttempts must be at least 0");
      this.#reconnect = settings;
    }
    if (options.methods) this.expose(options.methods);
    if (options.autoConnect ?? true) this.connect();
  }

  // -- state ----------------------------------------------------------------------------------------------

  /** Where the client stands: "idle", "connecting", "open", "reconnecting" (waiting to retry) or "closed". */
  get state() {
    return this.#state;
  }

  /** Whether a connection is open. */
  get connected() {
    return this.#state === "open";
  }

  /** The current WebSocket, if any. */
  get socket() {
    return this.#connection?.ws ?? null;
  }

  /** The number of calls not yet settled (waiting to be sent or awaiting their answer). */
  get pendingCalls() {
    return this.#pendingCalls;
  }

  /** The bytes (estimated, UTF-8) of calls and notifications waiting in the outbox, not yet given to the socket. */
  get queuedBytes() {
    return this.#queuedBytes;
  }

  /**
   * Resolves when a connection is open (at once if one is); rejects if the client closes for good first.
   * Never an unhandled rejection: it may be ignored.
   * @returns {Promise<void>}
   */
  get ready() {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed") return handled(Promise.reject(this.#disconnectedError()));
    return handled(new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject })));
  }

  /**
   * Starts connecting if the client is idle or closed (a closed client starts over), or retries at once if
   * it is waiting to reconnect; returns {@link Client#ready}.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.#state === "idle" || this.#state === "closed") {
      this.#attempt = 0;
      this.#open();
    } else if (this.#state === "reconnecting" && this.#reconnectTimer !== null) {
      // Waiting for the next attempt: make it now.
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
      this.#open();
    }
    return this.ready;
  }

  /**
   * Closes the connection for good (no reconnecting): every pending call and every call waiting to be sent
   * is rejected at once with a {@link DisconnectedError} carrying `code` and `reason`. {@link Client#connect}
   * starts over.
   * @param {number} [code] 1000 or 3000 to 4999 (what browsers allow)
   * @param {string} [reason] at most 123 bytes of UTF-8
   * @returns {Promise<void>} resolves when the socket has closed
   */
  close(code = CloseCode.NORMAL, reason = "") {
    if (code !== CloseCode.NORMAL && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`a close code must be 1000 or in 3000..4999, not ${code}`);
    }
    if (utf8Length(reason) > 123) throw new RangeError("a close reason must be at most 123 bytes of UTF-8");
    if (this.#state === "closed") return Promise.resolve();
    this.#clearTimers();
    const connection = this.#connection;
    if (!connection) {
      this.#becomeClosed(code, reason, true, true);
      return Promise.resolve();
    }
    /** @type {Promise<void>} */
    const closed = new Promise((resolve) => {
      const safety = setTimeout(resolve, 5000);
      connection.onClosed.push(() => {
        clearTimeout(safety);
        resolve();
      });
    });
    const ws = connection.ws;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing: the connection ends below all the same.
      }
    } else {
      for (const done of connection.onClosed.splice(0)) done();
    }
    this.#connectionEnded(connection, code, reason, true, true);
    return closed;
  }

  // -- methods the server can call ------------------------------------------------------------------------

  /**
   * Exports a method for the server to call (replacing one of the same name), or several at once.
   * @param {string | Record<string, Function>} name
   * @param {Function} [handler] `(params, context) => result`, sync or async
   * @returns {this}
   */
  expose(name, handler) {
    if (typeof name === "object" && name !== null) {
      for (const [key, value] of Object.entries(name)) this.expose(key, value);
      return this;
    }
    checkMethodName(name);
    if (typeof handler !== "function") throw new TypeError(`the handler of ${name} must be a function`);
    this.#methods.set(name, handler);
    return this;
  }

  /**
   * Exports a stream method for the server to call (replacing a method of the same name): `items(params,
   * context)` returns the stream's items, an async iterable or an iterable (or a promise of one). The
   * request is answered with a fresh stream id, then the items follow as far as the server's credit
   * allows, then `$/stream.end`. An error thrown by `items`, or by the iteration, ends the stream with it
   * (an RpcError's code, message and data; anything else -32603). `context.signal` is aborted when the
   * server cancels the stream or the connection ends.
   * @param {string} name
   * @param {Function} items `(params, context) => AsyncIterable | Iterable`
   * @returns {this}
   */
  exposeStream(name, items) {
    checkMethodName(name);
    if (typeof items !== "function") throw new TypeError(`the items function of ${name} must be a function`);
    // What a notification of the method would run: nothing (a stream needs a request).
    const standIn = () => {};
    STREAM_METHODS.set(standIn, items);
    this.#methods.set(name, standIn);
    return this;
  }

  /**
   * Stops exporting a method.
   * @param {string} name
   * @returns {boolean} whether it was exported
   */
  unexpose(name) {
    return this.#methods.delete(name);
  }

  // -- events ---------------------------------------------------------------------------------------------

  /**
   * Listens to an event: "open" (alias "connected"), "close" (alias "disconnected"), "reconnecting",
   * "error".
   * @param {string} type
   * @param {Function} listener
   * @returns {() => void} removes the listener
   */
  on(type, listener) {
    type = eventType(type);
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /**
   * Removes a listener.
   * @param {string} type
   * @param {Function} listener
   */
  off(type, listener) {
    this.#listeners.get(eventType(type))?.delete(listener);
  }

  /**
   * The next event of a type, as a promise.
   * @param {string} type
   * @param {{signal?: AbortSignal}} [options] rejects with the signal's reason when aborted
   * @returns {Promise<any>}
   */
  once(type, options = {}) {
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        off();
        reject(signal?.reason);
      };
      const off = this.on(type, (/** @type {unknown} */ event) => {
        off();
        signal?.removeEventListener("abort", onAbort);
        resolve(event);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * @param {string} type
   * @param {object} event
   */
  #emit(type, event) {
    const set = this.#listeners.get(type);
    if (!set) return;
    const full = { type, ...event };
    for (const listener of [...set]) {
      try {
        listener.call(this, full);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }

  // -- calling the server ---------------------------------------------------------------------------------

  /**
   * Calls a method of the server.
   * @param {string} method
   * @param {unknown[] | Record<string, unknown>} [params] sent as given; omitted when undefined
   * @param {import("./birpc.js").CallOptions} [options]
   * @returns {Promise<any>}
   */
  call(method, params, options = {}) {
    let made;
    try {
      made = makePart(method, params, false, true);
      if (made.uploads.length > 0) made.part.uploads = this.#bindUploads(made.uploads, method);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#submit(envelope([made.part], false), options);
    return made.promise;
  }

  /**
   * Opens a stream of the server (a download): `method(params)` answers a stream id, then sends items.
   * What is returned is an async iterator of the items (`for await (const item of client.stream(...))`);
   * the request is sent at once. At most `window` items wait in the page; the server is granted more as
   * they are taken. Leaving the loop (`break`, `return()`), `cancel()` or the signal stops the stream: the
   * server is told with `$/stream.cancel`. The iteration throws what ends the stream otherwise: an RpcError
   * (the server's error answer, or the error it ended the stream with), a DisconnectedError (the
   * connection ended), a ProtocolError (the server sent beyond its credit), the signal's reason, a
   * TimeoutError (no answer to the request within `timeout`), a LimitExceededError (`maxStreams` streams
   * already), a TypeError or RangeError (bad arguments).
   * @param {string} method
   * @param {unknown[] | Record<string, unknown>} [params]
   * @param {import("./birpc.js").StreamOptions} [options]
   * @returns {ItemStream<any>}
   */
  stream(method, params, options = {}) {
    /** @type {DownloadControl} */
    const control = /** @type {any} */ ({});
    /** @type {Download} */
    const download = /** @type {any} */ ({
      part: null,
      connection: null,
      key: null,
      signal: undefined,
      onAbort: null,
      counted: false,
      control,
    });
    /** @type {unknown} */
    let problem;
    let window = /** @type {number} */ (DEFAULTS.window);
    try {
      window = streamWindow(options.window);
    } catch (error) {
      problem = error;
    }
    download.stream = new ItemStream(
      window,
      {
        grant: (credit) => {
          const connection = download.connection;
          if (connection && download.key !== null) this.#sendUrgent(connection, creditFrame(download.key, credit));
        },
        closed: (cancelRemote) => this.#downloadClosed(download, cancelRemote),
      },
      control,
    );
    const fail = (/** @type {unknown} */ error) => {
      control.end(error, true, false);
      return download.stream;
    };
    if (problem !== undefined) return fail(problem);
    const signal = options.signal;
    if (signal?.aborted) return fail(signal.reason);
    if (this.#downloads >= this.#maxStreams) {
      return fail(
        new LimitExceededError("maxStreams", this.#maxStreams, `${this.#maxStreams} streams are open already (maxStreams)`),
      );
    }
    let made;
    try {
      made = makePart(method, params, false);
    } catch (error) {
      return fail(error);
    }
    const part = made.part;
    this.#downloads++;
    download.counted = true;
    download.part = part;
    part.download = download;
    // Settled synchronously, in the turn the answer arrives: the stream is in place for the items that follow.
    part.resolve = (id) => this.#downloadOpened(download, id);
    part.reject = (error) => control.end(error, true, false);
    if (signal) {
      download.signal = signal;
      download.onAbort = () => control.end(signal.reason, true, true);
      signal.addEventListener("abort", download.onAbort, { once: true });
    }
    this.#submit(envelope([part], false), { timeout: options.timeout, whenDisconnected: options.whenDisconnected });
    return download.stream;
  }

  /**
   * Makes an upload of `items` for a call: put it in the call's params (`client.call("sum_upload",
   * [client.upload(numbers)])`), where it travels as its stream id. Nothing is sent before the server
   * grants credit; then the items go as far as the credit allows, and `$/stream.end` after the last (with
   * the error if the iteration throws). Production stops (the iterator's `return()`) when the server
   * cancels the stream, when the call settles, or when the connection ends. One upload serves one call.
   * @param {AsyncIterable<unknown> | Iterable<unknown>} items
   * @returns {Upload}
   */
  upload(items) {
    if (!isIterable(items)) throw new TypeError("an upload takes an async iterable or an iterable");
    const id = ++this.#lastStreamId;
    const upload = new Upload(id);
    UPLOADS.set(upload, { client: this, producer: producer(id, items, ""), used: false });
    return upload;
  }

  /**
   * Takes an upload the server sends with its request: called by a handler of the page (or a stream
   * method's items function) on the param that carries the upload's stream id, synchronously, as the
   * bindings generated by birpc's `typescript` module do: `(params, context) =>
   * handlers.mean(client.receiveUpload(params[0]), context)`. The server is granted `window` items at once,
   * and more as they are taken; the stream is cancelled (`$/stream.cancel`) when the handler has answered
   * (a stream method: when its stream ends) if it has not ended by then.
   * @param {unknown} id the upload's stream id, as the server sent it
   * @param {{window?: number}} [options]
   * @returns {ItemStream<any>}
   */
  receiveUpload(id, options = {}) {
    const binding = this.#binding;
    if (!binding) {
      throw new TypeError("receiveUpload takes an upload while a handler of the page is being called, not later");
    }
    const window = streamWindow(options.window);
    const { connection } = binding;
    const key = streamKey(id);
    if (key === null) throw new RpcError(ErrorCode.INVALID_PARAMS, undefined, "an upload is a stream id: a number or a string");
    if (connection.downloads.has(key)) {
      throw new RpcError(ErrorCode.INVALID_PARAMS, undefined, `the upload ${key} is bound already`);
    }
    if (this.#downloads >= this.#maxStreams) {
      throw new RpcError(ErrorCode.TOO_MANY_STREAMS, undefined, `at most ${this.#maxStreams} streams`);
    }
    /** @type {DownloadControl} */
    const control = /** @type {any} */ ({});
    /** @type {Download} */
    const upload = /** @type {any} */ ({ part: null, connection, key, signal: undefined, onAbort: null, counted: true, control });
    upload.stream = new ItemStream(
      window,
      {
        grant: (credit) => this.#sendUrgent(connection, creditFrame(key, credit)),
        closed: (cancelRemote) => this.#downloadClosed(upload, cancelRemote),
      },
      control,
    );
    this.#downloads++;
    connection.downloads.set(key, upload);
    binding.uploads.push(upload);
    control.open(/** @type {string | number} */ (id));
    this.#sendUrgent(connection, creditFrame(key, window));
    return upload.stream;
  }

  /**
   * Binds the uploads found in a call's params to it.
   * @param {Upload[]} uploads
   * @param {string} method
   * @returns {Producer[]}
   */
  #bindUploads(uploads, method) {
    const states = [...new Set(uploads)].map((upload) => /** @type {NonNullable<ReturnType<typeof UPLOADS.get>>} */ (UPLOADS.get(upload)));
    if (states.length < uploads.length) throw new TypeError("an upload can appear once in a call's params");
    for (const state of states) {
      if (state.client !== this) throw new TypeError("an upload goes in a call of the client that made it");
      if (state.used) throw new TypeError("an upload serves one call only; this one was used already");
    }
    if (this.#producing + states.length > this.#maxStreams) {
      throw new LimitExceededError(
        "maxStreams",
        this.#maxStreams,
        `the page produces ${this.#maxStreams} streams already (maxStreams)`,
      );
    }
    this.#producing += states.length;
    return states.map((state) => {
      state.used = true;
      state.producer.method = method;
      return state.producer;
    });
  }

  /**
   * Sends a notification (no answer). The promise resolves when the message is handed to the socket, and
   * rejects if it cannot be (limits, disconnection, timeout, abort); it never goes unhandled, so it may be
   * ignored.
   * @param {string} method
   * @param {unknown[] | Record<string, unknown>} [params]
   * @param {import("./birpc.js").CallOptions} [options]
   * @returns {Promise<void>}
   */
  notify(method, params, options = {}) {
    let made;
    try {
      made = makePart(method, params, true);
    } catch (error) {
      return handled(Promise.reject(error));
    }
    const env = envelope([made.part], false);
    env.sent = deferred();
    this.#submit(env, options);
    return handled(env.sent.promise);
  }

  /**
   * Sends several calls and notifications in one message. `build` receives a builder whose `call` returns
   * each call's promise and whose `notify` adds a notification; what `build` returns is awaited (an array
   * like Promise.all), after the batch is handed to the socket.
   * @template T
   * @param {(batch: BatchBuilder) => T} build
   * @param {import("./birpc.js").CallOptions} [options] timeout and signal of the whole batch
   * @returns {Promise<any>}
   */
  batch(build, options = {}) {
    const builder = new BatchBuilder();
    let built;
    try {
      built = build(builder);
    } catch (error) {
      builder._seal();
      return Promise.reject(error);
    }
    const parts = builder._seal();
    /** @type {Promise<any>} */
    const all = Array.isArray(built) ? Promise.all(built) : Promise.resolve(built);
    handled(all);
    if (parts.length === 0) return all;
    const env = envelope(parts, true);
    env.sent = deferred();
    this.#submit(env, options);
    return env.sent.promise.then(() => all);
  }

  /**
   * Admits an envelope: refuses it at once, sends it, or queues it.
   * @param {Envelope} env
   * @param {import("./birpc.js").CallOptions} options
   */
  #submit(env, options) {
    let mode;
    let timeout;
    try {
      mode = disconnectedMode(options.whenDisconnected ?? this.#whenDisconnected);
      timeout = options.timeout === undefined ? this.#timeout : optionalPositive("timeout", options.timeout, null);
    } catch (error) {
      return this.#fail(env, error);
    }
    const signal = options.signal;
    if (signal?.aborted) return this.#fail(env, signal.reason);
    env.whenDisconnected = mode;
    if (this.#state === "closed") return this.#fail(env, this.#disconnectedError());
    if (mode === "fail" && this.#state !== "open") return this.#fail(env, this.#disconnectedError());
    if (this.#maxMessageSize !== null && env.bytes > this.#maxMessageSize) {
      return this.#fail(
        env,
        new LimitExceededError(
          "maxMessageSize",
          this.#maxMessageSize,
          `the message (about ${env.bytes} bytes) is larger than maxMessageSize (${this.#maxMessageSize})`,
        ),
      );
    }
    if (env.calls > 0 && this.#pendingCalls + env.calls > this.#maxPendingCalls) {
      return this.#fail(
        env,
        new LimitExceededError(
          "maxPendingCalls",
          this.#maxPendingCalls,
          `too many pending calls (maxPendingCalls is ${this.#maxPendingCalls})`,
        ),
      );
    }
    const connection = this.#connection;
    const sendsNow =
      connection !== null &&
      connection.open &&
      this.#outbox.length === 0 &&
      connection.urgent.length === 0 &&
      connection.ws.bufferedAmount <= this.#highWaterMark;
    if (!sendsNow && this.#outbox.length > 0 && this.#queuedBytes + env.bytes > this.#maxQueuedBytes) {
      return this.#fail(
        env,
        new LimitExceededError(
          "maxQueuedBytes",
          this.#maxQueuedBytes,
          `the send queue is full (${this.#queuedBytes} bytes wait; maxQueuedBytes is ${this.#maxQueuedBytes})`,
        ),
      );
    }

    this.#pendingCalls += env.calls;
    if (timeout !== null) {
      const name = env.batch ? "batch" : env.parts[0].method;
      env.timer = setTimeout(() => {
        env.timer = null;
        this.#withdraw(env, new TimeoutError(name, timeout));
      }, timeout);
    }
    if (signal) {
      env.signal = signal;
      env.onAbort = () => this.#withdraw(env, signal.reason);
      signal.addEventListener("abort", env.onAbort, { once: true });
    }
    env.state = "queued";
    this.#outbox.push(env);
    this.#queuedBytes += env.bytes;
    this.#flush();
  }

  /**
   * Rejects an envelope that was never admitted.
   * @param {Envelope} env
   * @param {unknown} error
   */
  #fail(env, error) {
    env.state = "settled";
    for (const part of env.parts) {
      part.settled = true;
      this.#stopUploads(part);
      part.reject(error);
    }
    env.sent?.reject(error);
  }

  /**
   * Settles one part; finishes its envelope when it was the last.
   * @param {Part} part
   * @param {boolean} ok
   * @param {unknown} value
   */
  #settle(part, ok, value) {
    if (part.settled) return;
    part.settled = true;
    if (!part.notification) this.#pendingCalls--;
    // An upload lives as long as its call.
    this.#stopUploads(part);
    if (ok) part.resolve(value);
    else part.reject(value);
    const env = part.envelope;
    if (env.parts.every((p) => p.settled)) this.#finish(env);
  }

  /** @param {Envelope} env */
  #finish(env) {
    env.state = "settled";
    if (env.timer !== null) clearTimeout(env.timer);
    env.timer = null;
    if (env.signal && env.onAbort) env.signal.removeEventListener("abort", env.onAbort);
    env.onAbort = null;
  }

  /**
   * Withdraws an envelope (timeout, abort): takes it out of the outbox, or tells the server with
   * $/cancelRequest for each call it has not answered; rejects what is unsettled.
   * @param {Envelope} env
   * @param {unknown} error
   */
  #withdraw(env, error) {
    if (env.state === "settled") return;
    if (env.state === "queued") {
      this.#removeQueued(env);
      env.sent?.reject(error);
    } else if (env.state === "sent") {
      const connection = env.connection;
      /** @type {number[]} */
      const ids = [];
      for (const part of env.parts) {
        if (part.settled || part.id === undefined || !connection) continue;
        if (connection.inflight.get(part.id) === part) {
          connection.inflight.delete(part.id);
          ids.push(part.id);
          if (part.download) this.#orphan(connection, part.id);
        }
      }
      if (connection && !connection.ended && ids.length > 0) {
        const cancels = ids.map((id) => `{"jsonrpc":"2.0","method":"${CANCEL_METHOD}","params":{"id":${id}}}`);
        this.#sendUrgent(connection, cancels.length === 1 ? cancels[0] : `[${cancels.join(",")}]`);
      }
    }
    for (const part of env.parts) this.#settle(part, false, error);
    this.#finish(env);
  }

  /** @param {Envelope} env */
  #removeQueued(env) {
    const index = this.#outbox.indexOf(env);
    if (index >= 0) {
      this.#outbox.splice(index, 1);
      this.#queuedBytes -= env.bytes;
    }
  }

  /**
   * Queues an answer or a cancellation of a connection, ahead of the outbox.
   * @param {Connection} connection
   * @param {string} text
   */
  #sendUrgent(connection, text) {
    if (connection.ended) return;
    connection.urgent.push(text);
    this.#flush();
  }

  /** Hands queued messages to the socket while its bufferedAmount is at most the high-water mark. */
  #flush() {
    const connection = this.#connection;
    if (!connection || !connection.open || connection.ended) return;
    const ws = connection.ws;
    for (;;) {
      const waiting = connection.urgent.length > 0 || this.#outbox.length > 0;
      if (!waiting && connection.roomWaiters.length === 0) return;
      if (ws.readyState !== OPEN) return;
      if (ws.bufferedAmount > this.#highWaterMark) {
        this.#pollTimer ??= setTimeout(() => {
          this.#pollTimer = null;
          this.#flush();
        }, this.#pollInterval);
        return;
      }
      if (!waiting) {
        // Both queues empty and the buffer low: the producers waiting for room go on.
        for (const wake of connection.roomWaiters.splice(0)) wake();
        return;
      }
      if (connection.urgent.length > 0) {
        const text = /** @type {string} */ (connection.urgent.shift());
        try {
          ws.send(text);
        } catch (error) {
          this.#emit("error", { error });
        }
        continue;
      }
      const env = /** @type {Envelope} */ (this.#outbox.shift());
      this.#queuedBytes -= env.bytes;
      this.#transmit(connection, env);
      if (connection.ended || this.#connection !== connection) return;
    }
  }

  /**
   * Gives an envelope its ids and sends it.
   * @param {Connection} connection
   * @param {Envelope} env
   */
  #transmit(connection, env) {
    const texts = [];
    for (const part of env.parts) {
      if (part.notification) texts.push(partText(part, undefined));
      else {
        part.id = ++connection.nextId;
        connection.inflight.set(part.id, part);
        texts.push(partText(part, part.id));
      }
    }
    env.state = "sent";
    env.connection = connection;
    const download = env.batch ? undefined : env.parts[0].download;
    try {
      // A download's announcement goes right before its request.
      if (download) {
        const id = /** @type {number} */ (env.parts[0].id);
        connection.ws.send(notificationFrame(StreamMethod.OPEN, `{"id":${id},"window":${download.stream.window}}`));
      }
      connection.ws.send(env.batch ? `[${texts.join(",")}]` : texts[0]);
    } catch (error) {
      for (const part of env.parts) if (part.id !== undefined) connection.inflight.delete(part.id);
      env.sent?.reject(error);
      for (const part of env.parts) this.#settle(part, false, error);
      this.#finish(env);
      return;
    }
    env.sent?.resolve();
    for (const part of env.parts) if (part.notification) this.#settle(part, true, undefined);
    // Uploads wait on this connection for the credit of the server.
    for (const part of env.parts) {
      for (const upload of part.uploads ?? []) {
        if (upload.stopped) continue;
        upload.connection = connection;
        connection.produced.set(upload.key, upload);
        this.#produce(upload);
      }
    }
    if (env.batch) {
      const ids = env.parts.filter((part) => !part.notification).map((part) => /** @type {number} */ (part.id));
      if (ids.length > 0) {
        // Batches of which a call was answered can no longer be rejected whole; they go first.
        const live = (/** @type {number[]} */ batch) => batch.every((id) => connection.inflight.has(id));
        while (connection.batches.length > 0 && !live(connection.batches[0])) connection.batches.shift();
        if (connection.batches.length >= this.#maxPendingCalls) connection.batches = connection.batches.filter(live);
        connection.batches.push(ids);
      }
    }
  }

  // -- the connection -------------------------------------------------------------------------------------

  #open() {
    this.#state = "connecting";
    let ws;
    try {
      const url = typeof this.#url === "function" ? this.#url() : this.#url;
      ws = new this.#WebSocket(url, this.#protocols);
    } catch (error) {
      // A malformed URL (a SyntaxError) will not get better: do not retry it.
      this.#lastClose = { code: CloseCode.ABNORMAL, reason: describe(error), wasClean: false };
      this.#becomeClosed(CloseCode.ABNORMAL, describe(error), false, true);
      this.#emit("error", { error });
      return;
    }
    try {
      ws.binaryType = "arraybuffer";
    } catch {
      // Not every WebSocket-like object has it.
    }
    /** @type {Connection} */
    const connection = {
      ws,
      open: false,
      ended: false,
      nextId: 0,
      inflight: new Map(),
      batches: [],
      running: new Map(),
      urgent: [],
      notifications: Promise.resolve(),
      controller: new AbortController(),
      connectTimer: null,
      errorTimer: null,
      onClosed: [],
      downloads: new Map(),
      produced: new Map(),
      announcements: new Map(),
      orphans: new Set(),
      roomWaiters: [],
    };
    this.#connection = connection;
    if (this.#connectTimeout !== null) {
      connection.connectTimer = setTimeout(() => {
        connection.connectTimer = null;
        if (connection.open || connection.ended) return;
        try {
          ws.close();
        } catch {
          // Nothing more to do with it.
        }
        this.#connectionEnded(connection, CloseCode.ABNORMAL, "connection timed out", false, false);
      }, this.#connectTimeout);
    }
    ws.addEventListener("open", () => this.#onOpen(connection));
    ws.addEventListener("message", (/** @type {MessageEvent} */ event) => this.#onMessage(connection, event.data));
    ws.addEventListener("close", (/** @type {CloseEvent} */ event) => {
      for (const done of connection.onClosed.splice(0)) done();
      this.#connectionEnded(connection, event.code ?? CloseCode.ABNORMAL, event.reason ?? "", !!event.wasClean, false);
    });
    ws.addEventListener("error", () => {
      // A close event normally follows at once, with the code; some implementations (Node 20 when the
      // connection cannot be made) send none. Wait one turn for it.
      for (const done of connection.onClosed.splice(0)) done();
      connection.errorTimer ??= setTimeout(() => {
        connection.errorTimer = null;
        this.#connectionEnded(connection, CloseCode.ABNORMAL, "connection failed", false, false);
      }, 0);
    });
  }

  /** @param {Connection} connection */
  #onOpen(connection) {
    if (connection.ended) return;
    connection.open = true;
    if (connection.connectTimer !== null) clearTimeout(connection.connectTimer);
    connection.connectTimer = null;
    this.#state = "open";
    this.#attempt = 0;
    for (const waiter of this.#readyWaiters.splice(0)) waiter.resolve();
    this.#emit("open", {});
    this.#flush();
  }

  /**
   * Ends a connection: rejects its calls in flight, stops its handlers, then reconnects or closes for good.
   * @param {Connection} connection
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   * @param {boolean} byClient whether {@link Client#close} ended it
   */
  #connectionEnded(connection, code, reason, wasClean, byClient) {
    if (connection.ended) return;
    connection.ended = true;
    if (connection.connectTimer !== null) clearTimeout(connection.connectTimer);
    if (connection.errorTimer !== null) clearTimeout(connection.errorTimer);
    if (this.#connection === connection) this.#connection = null;
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    this.#lastClose = { code, reason, wasClean };
    const error = new DisconnectedError(code, reason, wasClean);

    // Handlers still running: their answers would go nowhere.
    connection.controller.abort(error);
    for (const entry of connection.running.values()) {
      entry.controller.abort(error);
      entry.settle(null);
    }
    connection.running.clear();
    connection.urgent.length = 0;
    // Streams: none survives its connection.
    for (const download of [...connection.downloads.values()]) download.control.end(error, true, false);
    connection.downloads.clear();
    for (const upload of [...connection.produced.values()]) this.#stopProducer(upload, error);
    for (const wake of connection.roomWaiters.splice(0)) wake();
    connection.announcements.clear();
    connection.orphans.clear();
    // Calls in flight: rejected, never sent again.
    const inflight = [...connection.inflight.values()];
    connection.inflight.clear();
    for (const part of inflight) this.#settle(part, false, error);

    if (byClient) {
      this.#becomeClosed(code, reason, wasClean, true);
      return;
    }
    const settings = this.#reconnect;
    const event = { code, reason, wasClean };
    const retry =
      settings !== null &&
      this.#attempt < settings.maxAttempts &&
      (settings.shouldReconnect ? safeCall(settings.shouldReconnect, event) : true);
    if (!retry) {
      this.#becomeClosed(code, reason, wasClean, true);
      return;
    }
    // Waiting for the next connection: what cannot wait is refused now.
    this.#state = "reconnecting";
    this.#rejectQueued(error, false);
    if (connection.open) this.#emit("close", { ...event, willReconnect: true });
    if (this.#state === "reconnecting" && this.#reconnectTimer === null) this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    const settings = /** @type {ReconnectSettings} */ (this.#reconnect);
    this.#attempt += 1;
    const attempt = this.#attempt;
    const base = Math.min(settings.maxDelay, settings.initialDelay * settings.factor ** (attempt - 1));
    const delay = Math.max(0, Math.round(base * (1 - settings.jitter * Math.random())));
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === "reconnecting") this.#open();
    }, delay);
    this.#emit("reconnecting", { attempt, delay });
  }

  /**
   * The client stops for good: everything waiting is refused.
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   * @param {boolean} announce whether to emit "close"
   */
  #becomeClosed(code, reason, wasClean, announce) {
    this.#state = "closed";
    this.#clearTimers();
    this.#lastClose = { code, reason, wasClean };
    const error = new DisconnectedError(code, reason, wasClean);
    this.#rejectQueued(error, true);
    for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(error);
    if (announce) this.#emit("close", { code, reason, wasClean, willReconnect: false });
  }

  /**
   * Rejects the queued envelopes that cannot wait for a connection (all of them when `all`).
   * @param {unknown} error
   * @param {boolean} all
   */
  #rejectQueued(error, all) {
    /** @type {Envelope[]} */
    const keep = [];
    /** @type {Envelope[]} */
    const drop = [];
    for (const env of this.#outbox) (all || env.whenDisconnected === "fail" ? drop : keep).push(env);
    this.#outbox = keep;
    for (const env of drop) {
      this.#queuedBytes -= env.bytes;
      env.state = "sent"; // so that withdraw does not look for it in the outbox again
      env.connection = null;
      env.sent?.reject(error);
      for (const part of env.parts) this.#settle(part, false, error);
      this.#finish(env);
    }
  }

  #clearTimers() {
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
  }

  #disconnectedError() {
    const last = this.#lastClose;
    return last
      ? new DisconnectedError(last.code, last.reason, last.wasClean)
      : new DisconnectedError(CloseCode.ABNORMAL, "not connected");
  }

  // -- what arrives ---------------------------------------------------------------------------------------

  /**
   * @param {Connection} connection
   * @param {unknown} data
   */
  #onMessage(connection, data) {
    if (connection.ended) return;
    let text;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
    else if (data && typeof (/** @type {any} */ (data).text) === "function") {
      // A Blob (binaryType could not be set): decoded asynchronously, so possibly out of order.
      /** @type {any} */ (data).text().then((/** @type {string} */ t) => this.#onMessage(connection, t));
      return;
    } else return;

    let message;
    try {
      message = JSON.parse(text);
    } catch {
      this.#sendUrgent(connection, errorFrame("null", ErrorCode.PARSE_ERROR));
      return;
    }
    /** @type {ReturnType<typeof scanRawIds> | null} */
    let rawIds = null;
    /** @param {number | null} index */
    const rawIdOf = (index) => {
      rawIds ??= scanRawIds(text);
      const raw = index === null ? rawIds : Array.isArray(rawIds) ? rawIds[index] : undefined;
      return typeof raw === "string" ? raw : "null";
    };

    if (!Array.isArray(message)) {
      const answer = this.#onItem(connection, message, () => rawIdOf(null));
      if (answer) {
        answer.then((text) => {
          if (text !== null) this.#sendUrgent(connection, text);
          this.#answered(answer);
        });
      }
      return;
    }
    if (message.length === 0) {
      this.#sendUrgent(connection, errorFrame("null", ErrorCode.INVALID_REQUEST, undefined, "an empty batch"));
      return;
    }
    /** @type {Promise<string | null>[]} */
    const answers = [];
    message.forEach((item, index) => {
      const answer = this.#onItem(connection, item, () => rawIdOf(index));
      if (answer) answers.push(answer);
    });
    if (answers.length === 0) return;
    Promise.all(answers).then((texts) => {
      const sent = texts.filter((t) => t !== null);
      if (sent.length > 0 && !connection.ended) this.#sendUrgent(connection, `[${sent.join(",")}]`);
      for (const answer of answers) this.#answered(answer);
    });
  }

  /**
   * Handles one request, notification or response; returns the answer to send, if any.
   * @param {Connection} connection
   * @param {any} item
   * @param {() => string} rawId the raw text of the item's id
   * @returns {Promise<string | null> | null}
   */
  #onItem(connection, item, rawId) {
    if (!isPlainObject(item)) {
      return Promise.resolve(errorFrame("null", ErrorCode.INVALID_REQUEST, undefined, "not an object"));
    }
    const hasId = Object.hasOwn(item, "id");
    if (!Object.hasOwn(item, "method")) {
      this.#onResponse(connection, item);
      return null;
    }
    const validId = hasId && isId(item.id);
    const invalid = (/** @type {string} */ why) =>
      Promise.resolve(errorFrame(validId ? rawId() : "null", ErrorCode.INVALID_REQUEST, undefined, why));
    if (item.jsonrpc !== "2.0") return invalid('jsonrpc must be "2.0"');
    if (typeof item.method !== "string") return invalid("method must be a string");
    if (hasId && !validId) return invalid("id must be a string, a number or null");
    const params = item.params;
    if (params !== undefined && !Array.isArray(params) && !isPlainObject(params)) {
      return invalid("params must be an array or an object");
    }

    if (!hasId) {
      this.#onNotification(connection, item.method, params);
      return null;
    }
    return this.#onRequest(connection, item.method, params, item.id, rawId());
  }

  /**
   * @param {Connection} connection
   * @param {string} method
   * @param {unknown} params
   */
  #onNotification(connection, method, params) {
    if (this.#onStreamNotification(connection, method, params)) return;
    if (method === CANCEL_METHOD) {
      const id = isPlainObject(params) ? /** @type {any} */ (params).id : Array.isArray(params) ? params[0] : undefined;
      const entry = connection.running.get(idKey(id));
      if (!entry) return;
      entry.controller.abort(new RpcError(ErrorCode.REQUEST_CANCELLED));
      entry.settle(CANCELLED);
      return;
    }
    // In order: each notification's handler runs when the previous one is done.
    connection.notifications = connection.notifications.then(async () => {
      const handler = this.#methods.get(method);
      if (!handler || STREAM_METHODS.has(handler) || connection.ended) return;
      const context = { signal: connection.controller.signal, client: this, method, id: undefined, notification: true };
      try {
        await handler.call(undefined, params, context);
      } catch (error) {
        this.#emit("error", { error, method });
      }
    });
  }

  /**
   * Runs a handler for a request of the server; resolves to the answer's text (null: none to send).
   * @param {Connection} connection
   * @param {string} method
   * @param {unknown} params
   * @param {string | number | null} id
   * @param {string} rawId
   * @returns {Promise<string | null>}
   */
  #onRequest(connection, method, params, id, rawId) {
    const key = idKey(id);
    // A request claims the announcement of its id, whatever its method.
    const window = connection.announcements.get(key);
    if (window !== undefined) connection.announcements.delete(key);
    if (method === StreamMethod.CANCEL) {
      return Promise.resolve(resultFrame(rawId, String(this.#cancelProducer(connection, params))));
    }
    const handler = this.#methods.get(method);
    if (!handler) return Promise.resolve(errorFrame(rawId, ErrorCode.METHOD_NOT_FOUND));
    const items = STREAM_METHODS.get(handler);
    if (items && this.#producing >= this.#maxStreams) {
      return Promise.resolve(
        errorFrame(rawId, ErrorCode.TOO_MANY_STREAMS, undefined, `at most ${this.#maxStreams} streams`),
      );
    }
    const controller = new AbortController();
    /** @type {(answer: string | null) => void} */
    let settle = () => {};
    /** @type {Promise<string | null>} */
    const answer = new Promise((resolve) => {
      settle = resolve;
    });
    let settled = false;
    const entry = {
      controller,
      get settled() {
        return settled;
      },
      settle: (/** @type {string | null | typeof CANCELLED} */ text) => {
        if (settled) return;
        settled = true;
        if (connection.running.get(key) === entry) connection.running.delete(key);
        settle(text === CANCELLED ? errorFrame(rawId, ErrorCode.REQUEST_CANCELLED) : text);
      },
    };
    connection.running.set(key, entry);
    const context = { signal: controller.signal, client: this, method, id, notification: false };
    // Uploads the handler takes (receiveUpload, while it is called) live until it has answered, or for a
    // stream method until its stream ends.
    /** @type {Download[]} */
    const uploads = [];
    const outer = this.#binding;
    this.#binding = { connection, uploads };
    /** @type {unknown} */
    let result;
    try {
      result = (items ?? handler).call(undefined, params, context);
    } catch (error) {
      result = Promise.reject(error);
    } finally {
      this.#binding = outer;
    }
    let transferred = false;
    const transfer = () => {
      transferred = true;
      return uploads;
    };
    if (uploads.length > 0) {
      answer.then(() => {
        if (!transferred) for (const upload of uploads) upload.control.end(undefined, true, true);
      });
    }
    Promise.resolve(result).then(
      (value) => {
        if (items) {
          return this.#openProduced(connection, entry, answer, rawId, method, value, controller, window, transfer);
        }
        let json;
        try {
          json = JSON.stringify(value === undefined ? null : value);
        } catch (error) {
          this.#emit("error", { error, method });
          return entry.settle(
            errorFrame(rawId, ErrorCode.INTERNAL_ERROR, undefined, `the result could not be encoded: ${describe(error)}`),
          );
        }
        if (json === undefined) json = "null"; // a function or a symbol
        entry.settle(resultFrame(rawId, json));
      },
      (error) => {
        if (error instanceof RpcError) return entry.settle(errorFrame(rawId, error.code, error.message, error.data));
        if (!controller.signal.aborted) this.#emit("error", { error, method });
        entry.settle(errorFrame(rawId, ErrorCode.INTERNAL_ERROR, undefined, describe(error)));
      },
    );
    return answer;
  }

  /**
   * An answer to one of our calls.
   * @param {Connection} connection
   * @param {any} message
   */
  #onResponse(connection, message) {
    // Matched by value (1, 1.0 and 1e0 are one id; a string never matches), and only within the integers
    // a double holds exactly: a larger one may have been rounded onto another call's id.
    const id = message.id;
    const part = Number.isSafeInteger(id) ? connection.inflight.get(id) : undefined;
    if (!part && connection.orphans.delete(id)) {
      // A stream request withdrawn before its answer: the stream it opened after all is stopped.
      const key = Object.hasOwn(message, "result") ? streamKey(message.result) : null;
      if (key !== null) this.#sendUrgent(connection, cancelFrame(key));
      return;
    }
    if (!part) {
      // Late (withdrawn), unknown, or without an id (an error the server could not pin on a request): a
      // batch rejected as a whole fails all its calls; any other is reported.
      if ((id === null || id === undefined) && isPlainObject(message.error)) {
        const error = toRpcError(message.error);
        if (!this.#rejectBatch(connection, error)) this.#emit("error", { error });
      }
      return;
    }
    connection.inflight.delete(id);
    const hasResult = Object.hasOwn(message, "result");
    const hasError = Object.hasOwn(message, "error");
    if (hasResult && !hasError) this.#settle(part, true, message.result);
    else if (hasError && !hasResult && isErrorObject(message.error)) this.#settle(part, false, toRpcError(message.error));
    else this.#settle(part, false, new ProtocolError("the answer is not a valid JSON-RPC response", message));
  }
  // -- streams --------------------------------------------------------------------------------------------

  /**
   * The server answered a stream request with its stream id: the download is open.
   * @param {Download} download
   * @param {unknown} id
   */
  #downloadOpened(download, id) {
    const connection = /** @type {Part} */ (download.part).envelope.connection;
    download.part = null;
    const key = streamKey(id);
    if (key === null || !connection || connection.ended) {
      const error = new ProtocolError("the answer to a stream request is not a stream id (a number or a string)", id);
      download.control.end(error, true, false);
      return;
    }
    if (connection.downloads.has(key)) {
      const error = new ProtocolError(`the server answered the stream id ${key}, which an open stream has`, id);
      download.control.end(error, true, false);
      return;
    }
    download.connection = connection;
    download.key = key;
    connection.downloads.set(key, download);
    if (!download.control.open(/** @type {string | number} */ (id))) this.#downloadClosed(download, true);
  }

  /**
   * A download ended: it is forgotten, and the server told to stop when `cancelRemote`.
   * @param {Download} download
   * @param {boolean} cancelRemote
   */
  #downloadClosed(download, cancelRemote) {
    if (download.counted) {
      download.counted = false;
      this.#downloads--;
    }
    if (download.signal && download.onAbort) download.signal.removeEventListener("abort", download.onAbort);
    download.onAbort = null;
    const connection = download.connection;
    if (connection && download.key !== null) {
      if (connection.downloads.get(download.key) === download) connection.downloads.delete(download.key);
      if (cancelRemote) this.#sendUrgent(connection, cancelFrame(download.key));
    } else if (cancelRemote && download.part && !download.part.settled) {
      // Not answered yet: the request is withdrawn (and a stream its late answer opens, cancelled).
      this.#withdraw(download.part.envelope, abortError("the stream was cancelled"));
    }
  }

  /**
   * Remembers a stream request withdrawn in flight, so that a stream its answer opens is cancelled.
   * @param {Connection} connection
   * @param {number} id
   */
  #orphan(connection, id) {
    connection.orphans.add(id);
    if (connection.orphans.size > this.#maxPendingCalls) {
      connection.orphans.delete(/** @type {number} */ (connection.orphans.values().next().value));
    }
  }

  /**
   * Handles the messages of the stream protocol and the items of downloads; returns whether it did.
   * @param {Connection} connection
   * @param {string} method
   * @param {unknown} params
   */
  #onStreamNotification(connection, method, params) {
    const object = isPlainObject(params) ? /** @type {Record<string, any>} */ (params) : null;
    switch (method) {
      case StreamMethod.CREDIT: {
        const stream = object && connection.produced.get(/** @type {string} */ (streamKey(object.subscription)));
        const credit = object?.credit;
        if (stream && Number.isInteger(credit) && credit > 0) {
          // Infinity (no announcement) stays so.
          stream.credit = Math.min(Math.max(MAX_CREDIT, stream.credit), stream.credit + credit);
          stream.wake?.();
        }
        return true;
      }
      case StreamMethod.CANCEL:
        this.#cancelProducer(connection, params);
        return true;
      case StreamMethod.END: {
        const download = object && connection.downloads.get(/** @type {string} */ (streamKey(object.subscription)));
        if (download) download.control.end(object?.error == null ? undefined : toRpcError(object.error), false, false);
        return true;
      }
      case StreamMethod.OPEN: {
        const window = object?.window;
        if (object && (typeof object.id === "string" || typeof object.id === "number") && Number.isInteger(window) && window >= 0) {
          const key = idKey(object.id);
          connection.announcements.delete(key);
          connection.announcements.set(key, Math.min(window, MAX_CREDIT));
          if (connection.announcements.size > MAX_ANNOUNCEMENTS) {
            connection.announcements.delete(/** @type {string} */ (connection.announcements.keys().next().value));
          }
        }
        return true;
      }
    }
    // An item, or an error end under the method's name: {subscription, result} or {subscription, error}.
    if (!object || !Object.hasOwn(object, "subscription")) return false;
    const hasResult = Object.hasOwn(object, "result");
    if (!hasResult && !Object.hasOwn(object, "error")) return false;
    const download = connection.downloads.get(/** @type {string} */ (streamKey(object.subscription)));
    if (!download) {
      // Most likely an item of a stream that ended, still in flight: dropped, unless the page has a
      // method of that name.
      return !this.#methods.has(method);
    }
    if (hasResult) download.control.item(object.result, params);
    else download.control.end(toRpcError(object.error), false, false);
    return true;
  }

  /**
   * Answers a request of a stream method whose items function gave `items`: with a fresh stream id, after
   * which the items go (once the answer is handed to the socket).
   * @param {Connection} connection
   * @param {{settled: boolean, settle: (answer: string | null) => void}} entry
   * @param {Promise<string | null>} answer
   * @param {string} rawId
   * @param {string} method
   * @param {unknown} items
   * @param {AbortController} controller
   * @param {number | undefined} window the announced window; undefined: the server grants no credit
   * @param {() => Download[]} transfer takes the uploads the request's handler took, which live as long
   *   as the stream
   */
  #openProduced(connection, entry, answer, rawId, method, items, controller, window, transfer) {
    if (entry.settled) return; // withdrawn by the server, or the connection ended
    let source;
    try {
      source = openItems(items);
    } catch (error) {
      this.#emit("error", { error, method });
      entry.settle(errorFrame(rawId, ErrorCode.INTERNAL_ERROR, undefined, describe(error)));
      return;
    }
    if (this.#producing >= this.#maxStreams) {
      source.close();
      entry.settle(errorFrame(rawId, ErrorCode.TOO_MANY_STREAMS, undefined, `at most ${this.#maxStreams} streams`));
      return;
    }
    const stream = producer(++this.#lastStreamId, items, method);
    stream.source = source;
    stream.credit = window ?? Infinity;
    stream.controller = controller;
    stream.connection = connection;
    stream.uploads = transfer();
    connection.produced.set(stream.key, stream);
    this.#producing++;
    // The answer goes before the first item.
    this.#afterAnswer.set(answer, () => {
      if (!stream.stopped) this.#produce(stream);
    });
    entry.settle(resultFrame(rawId, stream.key));
  }

  /**
   * An answer of the page was handed to the socket (or dropped): what waited for it goes.
   * @param {Promise<string | null>} answer
   */
  #answered(answer) {
    const then = this.#afterAnswer.get(answer);
    if (!then) return;
    this.#afterAnswer.delete(answer);
    then();
  }

  /**
   * Sends the items of a stream the page produces, within credit, one at a time as the socket takes
   * them, then its end.
   * @param {Producer} stream
   */
  async #produce(stream) {
    const connection = /** @type {Connection} */ (stream.connection);
    try {
      for (;;) {
        while (!stream.stopped && stream.credit <= 0) {
          await new Promise((resolve) => {
            stream.wake = () => resolve(undefined);
          });
          stream.wake = null;
        }
        if (stream.stopped) return;
        await this.#room(connection);
        if (stream.stopped) return;
        stream.source ??= openItems(stream.items);
        const step = await stream.source.next();
        if (stream.stopped) return; // cancelled meanwhile: the item is dropped
        if (step.done) {
          this.#endProducer(stream, null);
          return;
        }
        let text;
        try {
          const json = JSON.stringify(step.value === undefined ? null : step.value) ?? "null";
          text = notificationFrame(stream.method, `{"subscription":${stream.key},"result":${json}}`);
        } catch (error) {
          this.#emit("error", { error, method: stream.method });
          stream.source.close();
          this.#endProducer(stream, errorJson(ErrorCode.INTERNAL_ERROR, `an item could not be encoded: ${describe(error)}`));
          return;
        }
        const bytes = utf8Length(text);
        if (this.#maxMessageSize !== null && bytes > this.#maxMessageSize) {
          stream.source.close();
          const detail = `an item of ${bytes} bytes is larger than maxMessageSize (${this.#maxMessageSize})`;
          this.#endProducer(stream, errorJson(ErrorCode.RESPONSE_TOO_LARGE, undefined, detail));
          return;
        }
        stream.credit--;
        this.#sendUrgent(connection, text);
      }
    } catch (error) {
      if (stream.stopped) return;
      if (!(error instanceof RpcError)) this.#emit("error", { error, method: stream.method });
      this.#endProducer(stream, producerErrorJson(error));
    }
  }

  /**
   * Resolves once the connection's queues are empty and its socket's buffer is at most the high-water
   * mark (or the connection ended).
   * @param {Connection} connection
   * @returns {Promise<void>}
   */
  #room(connection) {
    const free =
      connection.urgent.length === 0 &&
      this.#outbox.length === 0 &&
      connection.ws.bufferedAmount <= this.#highWaterMark;
    if (connection.ended || free) return Promise.resolve();
    return new Promise((resolve) => {
      connection.roomWaiters.push(resolve);
      this.#flush();
    });
  }

  /**
   * A stream the page produces ended: `$/stream.end`, with the error object (text) unless null.
   * @param {Producer} stream
   * @param {string | null} errorText
   */
  #endProducer(stream, errorText) {
    if (stream.stopped) return;
    this.#releaseProducer(stream);
    const connection = stream.connection;
    if (!connection) return;
    const error = errorText === null ? "" : `,"error":${errorText}`;
    this.#sendUrgent(connection, notificationFrame(StreamMethod.END, `{"subscription":${stream.key}${error}}`));
  }

  /**
   * Stops a stream the page produces before its end; returns whether it was live.
   * @param {Producer} stream
   * @param {unknown} reason what its signal is aborted with
   */
  #stopProducer(stream, reason) {
    if (stream.stopped) return false;
    this.#releaseProducer(stream);
    stream.controller?.abort(reason);
    stream.wake?.();
    stream.source?.close();
    return true;
  }

  /** @param {Producer} stream */
  #releaseProducer(stream) {
    stream.stopped = true;
    this.#producing--;
    const connection = stream.connection;
    if (connection && connection.produced.get(stream.key) === stream) connection.produced.delete(stream.key);
    for (const upload of stream.uploads.splice(0)) upload.control.end(undefined, true, true);
  }

  /**
   * `$/stream.cancel` from the server; returns whether the stream was live.
   * @param {Connection} connection
   * @param {unknown} params
   */
  #cancelProducer(connection, params) {
    const key = streamKey(cancelledStream(params));
    const stream = key === null ? undefined : connection.produced.get(key);
    if (!stream) return false;
    return this.#stopProducer(stream, new RpcError(ErrorCode.REQUEST_CANCELLED, "the stream was cancelled"));
  }

  /**
   * A call settled: its uploads stop.
   * @param {Part} part
   */
  #stopUploads(part) {
    if (!part.uploads) return;
    for (const upload of part.uploads) this.#stopProducer(upload, undefined);
  }

  /**
   * Fails every call of the batch `error` (answered with id null) rejects: the oldest batch of which no
   * call has been answered yet, and for -32004 Batch too large whose data says "at most N entries", the
   * oldest one longer than N. Returns whether there was one.
   * @param {Connection} connection
   * @param {RpcError} error
   */
  #rejectBatch(connection, error) {
    const limit =
      error.code === ErrorCode.BATCH_TOO_LARGE && typeof error.data === "string"
        ? Number(/^at most (\d+) entries$/.exec(error.data)?.[1] ?? 0)
        : 0;
    const index = connection.batches.findIndex(
      (batch) => batch.length > limit && batch.every((id) => connection.inflight.has(id)),
    );
    if (index < 0) return false;
    const [ids] = connection.batches.splice(index, 1);
    for (const id of ids) {
      const part = /** @type {Part} */ (connection.inflight.get(id));
      connection.inflight.delete(id);
      this.#settle(part, false, error);
    }
    return true;
  }

}

/** Marks a request answered with -32800 because the server withdrew it. */
const CANCELLED = Symbol("cancelled");

/** @param {any} error */
function isErrorObject(error) {
  return isPlainObject(error) && Number.isInteger(error.code) && typeof error.message === "string";
}

/** @param {any} error */
function toRpcError(error) {
  if (isErrorObject(error)) return RpcError.fromJSON(error);
  return new RpcError(ErrorCode.INTERNAL_ERROR, "invalid error object", error);
}

/** @param {string} type */
function eventType(type) {
  if (type === "connected") return "open";
  if (type === "disconnected") return "close";
  return type;
}

/**
 * @param {Function} f
 * @param {unknown} argument
 */
function safeCall(f, argument) {
  try {
    return !!f(argument);
  } catch (error) {
    reportListenerError(error);
    return false;
  }
}

/**
 * @param {unknown} mode
 * @returns {"wait" | "fail"}
 */
function disconnectedMode(mode) {
  if (mode !== "wait" && mode !== "fail") throw new TypeError('whenDisconnected must be "wait" or "fail"');
  return mode;
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {number} fallback
 */
function positive(name, value, fallback) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) throw new RangeError(`${name} must be a positive number`);
  return value;
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {number} fallback
 */
function nonNegative(name, value, fallback) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= 0)) throw new RangeError(`${name} must be a number, at least 0`);
  return value;
}

/**
 * A positive number, or null (or Infinity) for none.
 * @param {string} name
 * @param {unknown} value
 * @param {number | null} fallback
 */
function optionalPositive(name, value, fallback) {
  if (value === undefined) return fallback;
  if (value === null || value === Infinity) return null;
  return positive(name, value, 0);
}

/**
 * @param {unknown} name
 * @returns {asserts name is string}
 */
function checkMethodName(name) {
  if (typeof name !== "string") throw new TypeError("a method name must be a string");
  if (name === CANCEL_METHOD || /** @type {string[]} */ (Object.values(StreamMethod)).includes(name)) {
    throw new TypeError(`${name} is handled by the client itself`);
  }
}

/**
 * @param {unknown} value
 * @returns {number}
 */
function streamWindow(value) {
  if (value === undefined) return DEFAULTS.window;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_CREDIT) {
    throw new RangeError(`window must be an integer from 1 to ${MAX_CREDIT}`);
  }
  return value;
}

/**
 * Connects, and resolves with the client once the connection is open.
 * @param {string | URL | (() => string | URL)} url
 * @param {import("./birpc.js").ClientOptions} [options]
 * @returns {Promise<Client>}
 */
export async function connect(url, options = {}) {
  const client = new Client(url, { ...options, autoConnect: true });
  await client.ready;
  return client;
}
