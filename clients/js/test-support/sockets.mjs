// WebSocket stand-ins for the tests: a fake one driven by the test (no network), and a spy around the
// real one that records what crosses the wire.

/** Resolves the waiters of a list when something is added. */
class Feed {
  items = [];
  read = 0;
  waiters = [];

  push(item) {
    this.items.push(item);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The next item not yet taken, waiting for it if needed. */
  async next() {
    while (this.read >= this.items.length) await new Promise((resolve) => this.waiters.push(resolve));
    return this.items[this.read++];
  }

  /** The first item (taken or not, from now on) that satisfies `predicate`. */
  async find(predicate) {
    for (let i = 0; ; i++) {
      while (i >= this.items.length) await new Promise((resolve) => this.waiters.push(resolve));
      if (predicate(this.items[i])) return this.items[i];
    }
  }

  /** Items not yet taken. */
  get unread() {
    return this.items.slice(this.read);
  }
}

/** A WebSocket whose other side is the test. */
export class FakeWebSocket extends EventTarget {
  readyState = 0;
  bufferedAmount = 0;
  binaryType = "blob";
  closeCalls = [];
  /** Frames the client sent, as text. */
  sent = new Feed();

  constructor(url, protocols) {
    super();
    this.url = String(url);
    this.protocols = protocols;
  }

  send(data) {
    if (this.readyState !== 1) throw new Error("InvalidStateError: the socket is not open");
    this.sent.push(data);
  }

  /** Like a real socket: closing, then closed (the other side answering at once). */
  close(code, reason) {
    this.closeCalls.push([code, reason]);
    if (this.readyState >= 2) return;
    this.readyState = 2;
    setTimeout(() => this.serverClose(code ?? 1005, reason ?? "", true), 0);
  }

  /** The next frame the client sends, parsed. */
  async nextMessage() {
    return JSON.parse(await this.sent.next());
  }

  // -- the server's side --

  serverOpen() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }

  /** Delivers a message: a string as is, anything else as JSON. */
  serverSend(message) {
    const data = typeof message === "string" ? message : JSON.stringify(message);
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  serverClose(code = 1000, reason = "", wasClean = true) {
    this.readyState = 3;
    this.dispatchEvent(Object.assign(new Event("close"), { code, reason, wasClean }));
  }

  /** An error event without a close event (what Node 20 does when a connection cannot be made). */
  serverFail() {
    this.dispatchEvent(new Event("error"));
  }
}

/**
 * A fresh FakeWebSocket class for one test, and the sockets the client made with it.
 * @returns {{WebSocket: typeof FakeWebSocket, sockets: FakeWebSocket[], nextSocket: () => Promise<FakeWebSocket>}}
 */
export function fakeSockets() {
  const made = new Feed();
  class WebSocket extends FakeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      made.push(this);
    }
  }
  return { WebSocket, sockets: made.items, nextSocket: () => made.next() };
}

/**
 * A subclass of the real WebSocket recording the frames sent and received by every socket it makes; `wire`
 * has both, in the order the page saw them, as `{sent: message}` or `{received: message}`.
 * @returns {{WebSocket: typeof globalThis.WebSocket, sent: Feed, received: Feed, wire: Feed}}
 */
export function spySockets() {
  const sent = new Feed();
  const received = new Feed();
  const wire = new Feed();
  class WebSocket extends globalThis.WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      // Registered before the client's listener: a message is logged before the client acts on it.
      this.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        received.push(message);
        wire.push({ received: message });
      });
    }

    send(data) {
      const message = JSON.parse(data);
      sent.push(message);
      wire.push({ sent: message });
      super.send(data);
    }
  }
  return { WebSocket, sent, received, wire };
}

/** A promise and its resolve function, for handlers that a test releases. */
export function gate() {
  let open;
  const promise = new Promise((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
