// @ts-check
// The web_chat page: calls the server's `chat` service through the generated bindings, and exports the
// `page` service for the server to call (messages, presence, typing, "are you still there?"). Two streams
// share the connection: the room's live activity, which the server streams to the page, and text files,
// which the page uploads to the server in chunks.
//
// Several servers may share the hub on Redis: the page is on one of them, and its room spans them all.
// A message's id tells which server took it (its number times 2^32, plus the message's number in the room
// there), so that ids never collide; the page orders messages by the time their server took them.

import { Client } from "./birpc.js";
import { chatClient, exposePage } from "./chat.js";

/** @typedef {import("./chat.js").Chat} Chat */
/** @typedef {import("./chat.js").Message} Message */
/** @typedef {import("./chat.js").Presence} Presence */
/** @typedef {import("./chat.js").Joined} Joined */
/** @typedef {import("./chat.js").RollCallAnswer} RollCallAnswer */
/** @typedef {import("./chat.js").ChatError} ChatError */
/** @typedef {import("./chat.js").Activity} Activity */
/** @typedef {NonNullable<Message["attachment"]>} Attachment */
/** @typedef {import("./chat.js").PageHandlers} PageHandlers */
/** @typedef {import("./birpc.js").CloseEvent} ClientCloseEvent */
/** @typedef {import("./birpc.js").ReconnectingEvent} ReconnectingEvent */

/** The slow call the page can start and cancel, in milliseconds. */
const SLOW_MS = 10_000;
/** At most one `chat.typing` notification this often, in milliseconds. */
const TYPING_EVERY_MS = 2_000;
/** How long "… is typing" stays after the last notification, in milliseconds. */
const TYPING_SHOWN_MS = 4_000;
/** How long a notice stays, in milliseconds. */
const NOTICE_MS = 8_000;
const ROOM_NAME = /^[A-Za-z0-9_-]{1,32}$/;
/** How many items of the room's activity the panel shows, the latest first. */
const ACTIVITY_SHOWN = 4;
/** The most characters in one chunk of a shared file (the server takes 1 MiB in all). */
const SHARE_CHUNK_CHARS = 16_384;
/** How long sharing a file may take, in milliseconds. */
const SHARE_TIMEOUT_MS = 120_000;

/** Why the server refused, in words. @type {Record<ChatError, string>} */
const CHAT_ERRORS = {
  NotInARoom: "you are not in a room yet",
  BadRoomName: "room names are 1 to 32 letters, digits, - or _",
  BadMessage: "messages are 1 to 2,000 characters",
  BadFileName: "file names are 1 to 100 characters",
  FileTooLarge: "files are at most 1 MiB",
  BadFile: "the file is not UTF-8 text, or could not be read",
  AlreadySharing: "a file is being shared already",
};

// -- the elements -----------------------------------------------------------------------------------------

/**
 * The element with this id, of this type.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, prototype: T }} type
 * @returns {T}
 */
function byId(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return element;
}

const ui = {
  status: byId("status", HTMLElement),
  who: byId("who", HTMLElement),
  meName: byId("me-name", HTMLElement),
  node: byId("node", HTMLElement),
  leave: byId("leave", HTMLButtonElement),
  signin: byId("signin", HTMLElement),
  signinForm: byId("signin-form", HTMLFormElement),
  signinName: byId("signin-name", HTMLInputElement),
  signinRoom: byId("signin-room", HTMLInputElement),
  signinError: byId("signin-error", HTMLElement),
  chat: byId("chat", HTMLElement),
  roomName: byId("room-name", HTMLElement),
  switchForm: byId("switch-form", HTMLFormElement),
  switchRoom: byId("switch-room", HTMLInputElement),
  rooms: byId("rooms", HTMLUListElement),
  roomsRefresh: byId("rooms-refresh", HTMLButtonElement),
  members: byId("members", HTMLUListElement),
  memberCount: byId("member-count", HTMLElement),
  rollCall: byId("roll-call", HTMLButtonElement),
  rollCallResults: byId("roll-call-results", HTMLUListElement),
  slowStart: byId("slow-start", HTMLButtonElement),
  slowCancel: byId("slow-cancel", HTMLButtonElement),
  slowProgress: byId("slow-progress", HTMLProgressElement),
  slowStatus: byId("slow-status", HTMLElement),
  activity: byId("activity", HTMLElement),
  activityMembers: byId("activity-members", HTMLElement),
  activityMessages: byId("activity-messages", HTMLElement),
  activityLog: byId("activity-log", HTMLOListElement),
  messages: byId("messages", HTMLOListElement),
  typing: byId("typing", HTMLElement),
  postForm: byId("post-form", HTMLFormElement),
  postText: byId("post-text", HTMLInputElement),
  postSubmit: byId("post-submit", HTMLButtonElement),
  postError: byId("post-error", HTMLElement),
  sharePick: byId("share-pick", HTMLLabelElement),
  shareFile: byId("share-file", HTMLInputElement),
  shareStatus: byId("share-status", HTMLElement),
  shareText: byId("share-text", HTMLElement),
  shareProgress: byId("share-progress", HTMLProgressElement),
  notices: byId("notices", HTMLElement),
};

// -- the state ----------------------------------------------------------------------------------------------

/**
 * One signed-in session: its connection, the room it wants to be in, and what it shows of that room.
 * @typedef {object} Session
 * @property {string} name
 * @property {Client} client
 * @property {Chat} chat
 * @property {string} room the room this page wants to be in (it joins it again on every connection)
 * @property {string | null} joinedRoom the room the server has this connection in, if any
 * @property {string | undefined} roomShown the room whose members and messages are shown
 * @property {boolean} wasConnected whether a connection was ever open
 * @property {number} joins counts the joins asked for, so that only the latest one's answer is shown
 * @property {Map<string, number>} members how many pages of each name are in the room
 * @property {Map<number, Message>} messages the messages shown, by id, since the room's numbering last started over
 * @property {number} epoch how many times the room's numbering started over (the server restarted)
 * @property {Array<() => void> | null} held what the server pushed while a join was in flight
 * @property {Map<string, ReturnType<typeof setTimeout>>} typists who is typing, until when
 * @property {number} lastTyping when this page last said it was typing
 * @property {AbortController | null} slow the slow call in flight, if any
 * @property {AbortController | null} feed stops the stream of the room's activity shown, if one is open
 * @property {AbortController | null} sharing stops the file being shared, if any
 * @property {Array<() => void>} cleanup undoes the listeners on the client
 */

/** @type {Session | null} */
let session = null;

// -- the connection status ----------------------------------------------------------------------------------

/**
 * @param {"idle" | "connecting" | "connected" | "reconnecting" | "disconnected"} state
 * @param {string} text
 */
function showStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  document.body.dataset.connection = state;
  updateControls();
}

/** Enables what needs a connection and a room. */
function updateControls() {
  const ready = session !== null && session.client.connected && session.joinedRoom !== null;
  for (const control of [ui.postText, ui.postSubmit, ui.rollCall, ui.switchRoom, ui.roomsRefresh]) {
    control.disabled = !ready;
  }
  ui.slowStart.disabled = !ready || session?.slow != null;
  ui.shareFile.disabled = !ready || session?.sharing != null;
  ui.sharePick.classList.toggle("disabled", ui.shareFile.disabled);
  ui.postText.placeholder = ready ? "Write a message…" : "Waiting for the connection…";
  ui.members.classList.toggle("stale", !ready);
}

// -- signing in and out -----------------------------------------------------------------------------------

/**
 * Connects as `name` and joins `room`; on every (re)connection the room is joined again.
 * @param {string} name
 * @param {string} room
 */
function signIn(name, room) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/rpc?name=${encodeURIComponent(name)}`;
  const client = new Client(url, {
    autoConnect: false,
    // Calls wait for the connection only as long as a person would.
    timeout: 30_000,
    reconnect: { initialDelay: 250, maxDelay: 4_000 },
  });
  /** @type {Session} */
  const current = {
    name,
    client,
    chat: chatClient(client),
    room,
    joinedRoom: null,
    roomShown: undefined,
    wasConnected: false,
    joins: 0,
    members: new Map(),
    messages: new Map(),
    epoch: 0,
    held: null,
    typists: new Map(),
    lastTyping: 0,
    slow: null,
    feed: null,
    sharing: null,
    cleanup: [],
  };
  session = current;
  exposePage(client, pageHandlers(current));
  current.cleanup.push(
    client.on("open", () => {
      current.wasConnected = true;
      showStatus("connected", "connected");
      void join(current, current.room);
    }),
    client.on("close", (event) => onClose(current, event)),
    client.on("reconnecting", (event) => onReconnecting(current, event)),
  );

  ui.meName.textContent = name;
  ui.node.hidden = true;
  ui.who.hidden = false;
  ui.signin.hidden = true;
  ui.chat.hidden = false;
  ui.roomName.textContent = room;
  clearRoom(current);
  showStatus("connecting", "connecting…");
  void client.connect();
  ui.postText.focus();
}

/**
 * @param {Session} current
 * @param {ClientCloseEvent} event
 */
function onClose(current, event) {
  current.joinedRoom = null;
  current.held = null;
  if (event.willReconnect) {
    showStatus("reconnecting", "connection lost — reconnecting…");
  } else {
    showStatus("disconnected", "disconnected");
  }
}

/**
 * @param {Session} current
 * @param {ReconnectingEvent} event
 */
function onReconnecting(current, event) {
  current.joinedRoom = null;
  const what = current.wasConnected ? "connection lost — reconnecting" : "cannot reach the server — retrying";
  showStatus("reconnecting", `${what} (attempt ${event.attempt})…`);
}

function signOut() {
  const current = session;
  if (current === null) return;
  session = null;
  current.slow?.abort();
  current.sharing?.abort();
  stopActivity(current);
  for (const undo of current.cleanup) undo();
  for (const timer of current.typists.values()) clearTimeout(timer);
  void current.client.close(1000, "signed out");
  showStatus("disconnected", "disconnected");
  ui.notices.replaceChildren();
  ui.who.hidden = true;
  ui.chat.hidden = true;
  ui.signin.hidden = false;
  ui.signinName.focus();
}

// -- the room -----------------------------------------------------------------------------------------------

/**
 * Joins `room` on the current connection, then shows its members and the messages not shown yet.
 * @param {Session} current
 * @param {string} room
 */
async function join(current, room) {
  const ticket = ++current.joins;
  // Leaving the room: its activity stream is cancelled before the server is asked.
  stopActivity(current);
  /** @type {Array<() => void>} */
  const held = [];
  current.held = held;
  current.joinedRoom = null;
  updateControls();
  try {
    const joined = await current.chat.join(room);
    if (session !== current || ticket !== current.joins) return;
    current.held = null;
    showJoined(current, joined);
    // What the server pushed while the join was on its way comes after what the join told.
    for (const apply of held) apply();
    refreshRooms(current);
    void watchActivity(current);
  } catch (error) {
    if (session !== current || ticket !== current.joins) return;
    current.held = null;
    // A lost connection is shown by the status badge, and the next connection joins again.
    if (current.client.connected) notice(`Could not join ${room}: ${describe(error)}`, "error");
  } finally {
    if (session === current) updateControls();
  }
}

/**
 * @param {Session} current
 * @param {Joined} joined
 */
function showJoined(current, joined) {
  const sameRoom = current.roomShown === joined.room;
  if (!sameRoom) {
    clearRoom(current);
  } else if (startedOver(current, joined)) {
    // The server forgot the room (it restarted): what is shown stays, and the numbering starts again.
    current.epoch += 1;
    current.messages.clear();
    addDivider("The server restarted — the messages above are from before.");
  }
  current.room = joined.room;
  current.roomShown = joined.room;
  current.joinedRoom = joined.room;
  ui.roomName.textContent = joined.room;
  showNode(joined.node);
  current.members.clear();
  for (const name of joined.members) current.members.set(name, (current.members.get(name) ?? 0) + 1);
  showMembers(current);
  for (const message of joined.history) addMessage(current, message);
  if (!sameRoom && joined.history.length === 0) addDivider(`You are the first to speak in ${joined.room}.`);
}

/**
 * Whether the room's messages as the server has them now cannot follow those shown: some is missing or
 * differs, which happens when the server restarted and lost the room. Only the messages this server took
 * can tell (the history is of those); a server that restarts in a hub on Redis gets a new number, and so
 * new ids.
 * @param {Session} current
 * @param {Joined} joined
 */
function startedOver(current, joined) {
  let shownLast = 0;
  for (const id of current.messages.keys()) {
    if (nodeOf(id) === joined.node) shownLast = Math.max(shownLast, id);
  }
  const last = joined.history.at(-1)?.id ?? 0;
  if (last < shownLast) return true;
  return joined.history.some((message) => {
    const shown = current.messages.get(message.id);
    return shown !== undefined && (shown.from !== message.from || shown.at_ms !== message.at_ms);
  });
}

/**
 * The number of the server that took the message with this id (0 when the demo runs as one process).
 * @param {number} id
 */
function nodeOf(id) {
  return Math.floor(id / 2 ** 32);
}

/**
 * Shows which server of the hub the page is on, when there are several.
 * @param {number} node
 */
function showNode(node) {
  ui.node.hidden = node === 0;
  ui.node.textContent = `node ${node}`;
  ui.node.dataset.node = String(node);
}

/** @param {Session} current */
function clearRoom(current) {
  current.messages.clear();
  current.members.clear();
  current.epoch = 0;
  current.roomShown = undefined;
  ui.messages.replaceChildren();
  ui.members.replaceChildren();
  ui.rollCallResults.replaceChildren();
  ui.rollCallResults.hidden = true;
  for (const timer of current.typists.values()) clearTimeout(timer);
  current.typists.clear();
  showTyping(current);
  ui.activityLog.replaceChildren();
  ui.activityMembers.textContent = "–";
  ui.activityMessages.textContent = "–";
  ui.shareStatus.hidden = true;
}

/**
 * Runs `apply` now, or after the join in flight has been shown.
 * @param {Session} current
 * @param {() => void} apply
 */
function whenJoined(current, apply) {
  if (current.held !== null) current.held.push(apply);
  else apply();
}

// -- members ------------------------------------------------------------------------------------------------

/** @param {Session} current */
function showMembers(current) {
  const names = [...current.members.keys()].sort((a, b) => a.localeCompare(b));
  ui.members.replaceChildren(
    ...names.map((name) => {
      const item = document.createElement("li");
      item.className = "member";
      item.dataset.name = name;
      const avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.textContent = initial(name);
      avatar.style.setProperty("--hue", String(hue(name)));
      const label = document.createElement("span");
      label.className = "member-name";
      label.textContent = name;
      item.append(avatar, label);
      const tabs = current.members.get(name) ?? 0;
      if (tabs > 1) item.append(tag(`${tabs} tabs`));
      if (name === current.name) item.append(tag("you"));
      return item;
    }),
  );
  ui.memberCount.textContent = `(${names.length})`;
}

/**
 * @param {Session} current
 * @param {Presence} presence
 * @param {boolean} replayed whether it came while the join was in flight (it may be in the join's answer)
 */
function applyPresence(current, presence, replayed) {
  if (presence.room !== current.joinedRoom) return;
  const count = current.members.get(presence.name) ?? 0;
  if (presence.here) {
    current.members.set(presence.name, replayed ? Math.max(count, 1) : count + 1);
  } else if (count <= 1) {
    current.members.delete(presence.name);
  } else {
    current.members.set(presence.name, count - 1);
  }
  showMembers(current);
  if (presence.name !== current.name) {
    const tabs = current.members.get(presence.name) ?? 0;
    if (presence.here && tabs === 1) addDivider(`${presence.name} joined`);
    if (!presence.here && tabs === 0) addDivider(`${presence.name} left`);
  }
  refreshRooms(current);
}

// -- messages -----------------------------------------------------------------------------------------------

/**
 * Shows a message once, in its place: by the time its server took it, then by id.
 * @param {Session} current
 * @param {Message} message
 */
function addMessage(current, message) {
  if (current.messages.has(message.id)) return;
  current.messages.set(message.id, message);
  stopTyping(current, message.from);

  const item = document.createElement("li");
  item.className = message.from === current.name ? "message mine" : "message";
  item.dataset.id = String(message.id);
  item.dataset.at = String(message.at_ms);
  item.dataset.epoch = String(current.epoch);
  const avatar = document.createElement("span");
  avatar.className = "avatar";
  avatar.textContent = initial(message.from);
  avatar.style.setProperty("--hue", String(hue(message.from)));
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const meta = document.createElement("div");
  meta.className = "meta";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = message.from;
  const time = document.createElement("time");
  const at = new Date(message.at_ms);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.title = at.toLocaleString();
  meta.append(from, time);
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = message.text;
  bubble.append(meta, text);
  if (message.attachment !== null) bubble.append(attachmentCard(message.attachment));
  item.append(avatar, bubble);

  // Usually the last; one that overtook another goes before it.
  const stick = isScrolledDown();
  let after = ui.messages.lastElementChild;
  while (after instanceof HTMLElement && after.dataset.epoch === String(current.epoch)) {
    const [at, id] = [Number(after.dataset.at), Number(after.dataset.id)];
    if (at < message.at_ms || (at === message.at_ms && id < message.id)) break;
    after = after.previousElementSibling;
  }
  if (after === null) ui.messages.prepend(item);
  else after.after(item);
  if (stick || message.from === current.name) scrollDown();
}

/**
 * What a message about a shared file shows of it, below its text.
 * @param {Attachment} attachment
 */
function attachmentCard(attachment) {
  const card = document.createElement("div");
  card.className = "attachment";
  card.dataset.name = attachment.name;
  card.dataset.bytes = String(attachment.bytes);
  const lines = document.createElement("span");
  lines.className = "attachment-lines";
  lines.textContent = `${attachment.lines.toLocaleString("en")} ${attachment.lines === 1 ? "line" : "lines"}`;
  card.append(lines);
  if (attachment.preview !== "") {
    const preview = document.createElement("code");
    preview.className = "attachment-preview";
    preview.textContent = attachment.preview;
    card.append(preview);
  }
  return card;
}

/** @param {string} text */
function addDivider(text) {
  const item = document.createElement("li");
  item.className = "divider";
  item.textContent = text;
  const stick = isScrolledDown();
  ui.messages.append(item);
  if (stick) scrollDown();
}

function isScrolledDown() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** @param {SubmitEvent} event */
async function post(event) {
  event.preventDefault();
  const current = session;
  const text = ui.postText.value.trim();
  if (current === null || text === "") return;
  ui.postError.hidden = true;
  ui.postSubmit.disabled = true;
  try {
    // Not queued for a later connection, which would not be in the room yet.
    await current.chat.post(text, { whenDisconnected: "fail" });
    if (ui.postText.value.trim() === text) ui.postText.value = "";
    current.lastTyping = 0;
  } catch (error) {
    ui.postError.textContent = `Not sent: ${describe(error)}`;
    ui.postError.hidden = false;
  } finally {
    updateControls();
    ui.postText.focus();
  }
}

// -- typing -------------------------------------------------------------------------------------------------

/** Tells the others, at most every few seconds, that this page's member is typing. */
function typed() {
  const current = session;
  if (current === null || current.joinedRoom === null || ui.postText.value.trim() === "") return;
  const now = Date.now();
  if (now - current.lastTyping < TYPING_EVERY_MS) return;
  current.lastTyping = now;
  void current.chat.typing({ whenDisconnected: "fail" });
}

/**
 * @param {Session} current
 * @param {string} name
 */
function startTyping(current, name) {
  if (name === current.name) return;
  const previous = current.typists.get(name);
  if (previous !== undefined) clearTimeout(previous);
  current.typists.set(
    name,
    setTimeout(() => stopTyping(current, name), TYPING_SHOWN_MS),
  );
  showTyping(current);
}

/**
 * @param {Session} current
 * @param {string} name
 */
function stopTyping(current, name) {
  const timer = current.typists.get(name);
  if (timer === undefined) return;
  clearTimeout(timer);
  current.typists.delete(name);
  showTyping(current);
}

/** @param {Session} current */
function showTyping(current) {
  const names = [...current.typists.keys()];
  if (names.length === 0) {
    ui.typing.classList.remove("visible");
    return;
  }
  const who =
    names.length === 1
      ? `${names[0]} is`
      : names.length === 2
        ? `${names[0]} and ${names[1]} are`
        : `${names.length} people are`;
  ui.typing.textContent = `${who} typing…`;
  ui.typing.classList.add("visible");
}

// -- what the server calls --------------------------------------------------------------------------------

/**
 * The `page` service of this page, for the server to call.
 * @param {Session} current
 * @returns {PageHandlers}
 */
function pageHandlers(current) {
  return {
    message(message) {
      whenJoined(current, () => addMessage(current, message));
    },
    presence(presence) {
      const replayed = current.held !== null;
      whenJoined(current, () => applyPresence(current, presence, replayed));
    },
    typing(name) {
      startTyping(current, name);
    },
    still_there(askedBy) {
      const answer = `yes — ${current.name} is here`;
      notice(`${askedBy} asks whether you are still there`, "question", `This page answered “${answer}”.`);
      return answer;
    },
    name() {
      return current.name;
    },
  };
}

// -- the roll call ------------------------------------------------------------------------------------------

async function rollCall() {
  const current = session;
  if (current === null) return;
  ui.rollCall.disabled = true;
  ui.rollCall.textContent = "Asking everyone…";
  ui.rollCallResults.hidden = false;
  ui.rollCallResults.replaceChildren(resultLine("…", "waiting for the answers", "pending"));
  try {
    const answers = await current.chat.roll_call({ whenDisconnected: "fail" });
    if (session !== current) return;
    ui.rollCallResults.replaceChildren(
      ...answers.map((answer) =>
        answer.answer === null
          ? resultLine(answer.name, "no answer", "missing")
          : resultLine(answer.name, answer.answer, "answered"),
      ),
    );
  } catch (error) {
    if (session !== current) return;
    ui.rollCallResults.replaceChildren(resultLine("Roll call", `failed: ${describe(error)}`, "missing"));
  } finally {
    ui.rollCall.textContent = "Roll call";
    updateControls();
  }
}

/**
 * @param {string} name
 * @param {string} answer
 * @param {"answered" | "missing" | "pending"} state
 */
function resultLine(name, answer, state) {
  const item = document.createElement("li");
  item.className = `answer ${state}`;
  item.dataset.name = name;
  const who = document.createElement("span");
  who.className = "answer-name";
  who.textContent = name;
  const said = document.createElement("span");
  said.className = "answer-text";
  said.textContent = answer;
  item.append(who, said);
  return item;
}

// -- the slow call, and cancelling it -----------------------------------------------------------------------

async function startSlowCall() {
  const current = session;
  if (current === null || current.slow !== null) return;
  const controller = new AbortController();
  current.slow = controller;
  ui.slowCancel.disabled = false;
  ui.slowProgress.hidden = false;
  ui.slowProgress.max = SLOW_MS / 1000;
  ui.slowProgress.value = 0;
  showSlow("running", `Waiting for the server… 0 s of ${SLOW_MS / 1000}`);
  updateControls();
  const started = Date.now();
  const ticker = setInterval(() => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    ui.slowProgress.value = Math.min(seconds, SLOW_MS / 1000);
    showSlow("running", `Waiting for the server… ${seconds} s of ${SLOW_MS / 1000}`);
  }, 250);
  try {
    const answer = await current.chat.slow(SLOW_MS, { signal: controller.signal, whenDisconnected: "fail" });
    showSlow("done", `The server answered: ${answer}`);
  } catch (error) {
    if (controller.signal.aborted) showSlow("cancelled", "cancelled — the server stopped working on it");
    else showSlow("failed", `failed: ${describe(error)}`);
  } finally {
    clearInterval(ticker);
    current.slow = null;
    ui.slowCancel.disabled = true;
    ui.slowProgress.hidden = true;
    updateControls();
  }
}

/**
 * @param {"idle" | "running" | "done" | "cancelled" | "failed"} state
 * @param {string} text
 */
function showSlow(state, text) {
  ui.slowStatus.dataset.state = state;
  ui.slowStatus.textContent = text;
}

// -- rooms --------------------------------------------------------------------------------------------------

/**
 * Shows the rooms in use (not awaited: a list that comes late is still right).
 * @param {Session} current
 */
function refreshRooms(current) {
  current.chat
    .rooms({ whenDisconnected: "fail" })
    .then((rooms) => {
      if (session !== current) return;
      ui.rooms.replaceChildren(
        ...rooms.map(([room, count]) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.className = room === current.joinedRoom ? "room current" : "room";
          button.dataset.room = room;
          button.disabled = room === current.joinedRoom;
          button.textContent = room;
          button.append(tag(String(count)));
          item.append(button);
          return item;
        }),
      );
    })
    .catch(() => {
      // The list stays as it was; the next join or presence refreshes it.
    });
}

/** @param {string} room */
function switchTo(room) {
  const current = session;
  if (current === null) return;
  if (!ROOM_NAME.test(room)) {
    notice(CHAT_ERRORS.BadRoomName, "error");
    return;
  }
  if (room === current.joinedRoom) return;
  current.room = room;
  void join(current, room);
}

// -- the room's live activity: a stream from the server --------------------------------------------------

/**
 * Shows the activity of the room just joined as the server streams it, until the page leaves the room or
 * signs out (which cancel the stream through its signal) or the connection ends (which ends the stream;
 * the next connection joins again, and opens a new one).
 * @param {Session} current
 */
async function watchActivity(current) {
  stopActivity(current);
  const controller = new AbortController();
  current.feed = controller;
  ui.activity.dataset.state = "opening";
  try {
    for await (const activity of current.chat.activity({ signal: controller.signal, whenDisconnected: "fail" })) {
      showActivity(current, activity);
    }
    // The server ends it when this connection leaves the room, which the page does only after cancelling.
  } catch (error) {
    if (controller.signal.aborted || session !== current) return;
    // A lost connection is shown by the status badge; the next one opens a new stream.
    if (current.client.connected) notice(`The live activity stopped: ${describe(error)}`, "error");
  } finally {
    if (current.feed === controller) {
      current.feed = null;
      if (session === current) ui.activity.dataset.state = "stale";
    }
  }
}

/**
 * Cancels the activity stream shown, if any.
 * @param {Session} current
 */
function stopActivity(current) {
  const feed = current.feed;
  if (feed === null) return;
  current.feed = null;
  feed.abort();
  if (session === current) ui.activity.dataset.state = "stale";
}

/**
 * @param {Session} current
 * @param {Activity} activity
 */
function showActivity(current, activity) {
  ui.activity.dataset.state = "live";
  showFigure(ui.activityMembers, activity.members);
  showFigure(ui.activityMessages, activity.messages);
  const what = activity.what;
  if (what.kind === "Now") {
    // The first item: how the room is as the stream starts.
    ui.activityLog.replaceChildren();
    return;
  }
  const who = what.name === current.name ? "you" : what.name;
  /** @type {string} */
  let text;
  switch (what.kind) {
    case "Joined":
      text = `${who} joined`;
      break;
    case "Left":
      text = `${who} left`;
      break;
    case "Posted":
      text = `${who} posted #${what.seq}`;
      break;
    case "Shared":
      text = `${who} shared ${what.file} (${formatBytes(what.bytes)})`;
      break;
  }
  const item = document.createElement("li");
  item.className = "activity-item";
  item.dataset.kind = what.kind;
  item.dataset.name = what.name;
  const label = document.createElement("span");
  label.className = "activity-text";
  label.textContent = text;
  const time = document.createElement("time");
  const at = new Date(activity.at_ms);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  item.append(label, time);
  ui.activityLog.prepend(item);
  while (ui.activityLog.children.length > ACTIVITY_SHOWN) ui.activityLog.lastElementChild?.remove();
}

/**
 * Shows a figure of the room, flashing it when it changed.
 * @param {HTMLElement} element
 * @param {number} value
 */
function showFigure(element, value) {
  const text = value.toLocaleString("en");
  if (element.textContent === text) return;
  element.textContent = text;
  element.classList.remove("changed");
  void element.offsetWidth; // restarts the animation
  element.classList.add("changed");
}

// -- sharing a file: a stream to the server ---------------------------------------------------------------

/**
 * Shares `file` with the room: its text goes to the server in chunks, read from the file only as the
 * upload sends them, and the server posts it once the whole is in (or refuses it past 1 MiB, which stops
 * the upload, and the reading, there).
 * @param {File} file
 */
async function share(file) {
  const current = session;
  if (current === null || current.sharing !== null) return;
  const controller = new AbortController();
  current.sharing = controller;
  updateControls();
  const total = formatBytes(file.size);
  showShare("running", `Sharing ${file.name}…`, 0, file.size);
  try {
    const chunks = fileChunks(file, (sent) => {
      if (session === current) showShare("running", `Sharing ${file.name}… ${formatBytes(sent)} of ${total}`, sent, file.size);
    });
    await current.chat.share(file.name, chunks, {
      signal: controller.signal,
      timeout: SHARE_TIMEOUT_MS,
      whenDisconnected: "fail",
    });
    if (session === current) showShare("done", `Shared ${file.name} (${total})`, file.size, file.size);
  } catch (error) {
    if (session === current) showShare("failed", `Not shared: ${describe(error)}`, 0, file.size);
  } finally {
    if (current.sharing === controller) current.sharing = null;
    if (session === current) updateControls();
  }
}

/**
 * The text of `file`, decoded as UTF-8, in chunks of at most `SHARE_CHUNK_CHARS` characters; the file is
 * read as the chunks are taken, and no further once the upload stops taking them. A file that is not UTF-8
 * text throws a `TypeError`, which ends the upload with an error (the server then refuses the file).
 * @param {File} file
 * @param {(sent: number) => void} onSent told the bytes taken so far
 * @returns {AsyncGenerator<string, void, undefined>}
 */
async function* fileChunks(file, onSent) {
  const reader = file.stream().pipeThrough(new TextDecoderStream("utf-8", { fatal: true })).getReader();
  const encoder = new TextEncoder();
  let sent = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (let start = 0; start < value.length; ) {
        let end = Math.min(start + SHARE_CHUNK_CHARS, value.length);
        // Never between the two halves of a surrogate pair (JSON could not carry either half alone).
        const last = value.charCodeAt(end - 1);
        if (end < value.length && end - start > 1 && last >= 0xd800 && last <= 0xdbff) end -= 1;
        const chunk = value.slice(start, end);
        start = end;
        yield chunk;
        sent += encoder.encode(chunk).length;
        onSent(sent);
      }
    }
  } finally {
    // Done, or the upload stopped (the server refused the file, the call ended): the file is let go.
    await reader.cancel().catch(() => {});
  }
}

/**
 * @param {"running" | "done" | "failed"} state
 * @param {string} text
 * @param {number} value
 * @param {number} max
 */
function showShare(state, text, value, max) {
  ui.shareStatus.hidden = false;
  ui.shareStatus.dataset.state = state;
  ui.shareText.textContent = text;
  ui.shareProgress.max = Math.max(max, 1);
  ui.shareProgress.value = value;
  ui.shareProgress.hidden = state !== "running";
}

/**
 * A size, in words.
 * @param {number} bytes
 */
function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

// -- notices and small things -------------------------------------------------------------------------------

/**
 * Shows a notice for a few seconds; the same notice again replaces the one shown.
 * @param {string} text
 * @param {"question" | "error" | "info"} kind
 * @param {string} [detail] a second, smaller line
 */
function notice(text, kind, detail) {
  for (const shown of ui.notices.querySelectorAll(".notice")) {
    if (shown instanceof HTMLElement && shown.dataset.text === text) shown.remove();
  }
  const item = document.createElement("div");
  item.className = `notice ${kind}`;
  item.dataset.text = text;
  const main = document.createElement("span");
  main.textContent = text;
  item.append(main);
  if (detail !== undefined) {
    const more = document.createElement("span");
    more.className = "notice-detail";
    more.textContent = detail;
    item.append(more);
  }
  ui.notices.append(item);
  setTimeout(() => {
    item.classList.add("leaving");
    setTimeout(() => item.remove(), 400);
  }, NOTICE_MS);
}

/**
 * What went wrong, in words.
 * @param {unknown} error
 */
function describe(error) {
  if (error instanceof Error) {
    const data = /** @type {{data?: unknown}} */ (error).data;
    if (typeof data === "string" && data in CHAT_ERRORS) return CHAT_ERRORS[/** @type {ChatError} */ (data)];
    if (error.name === "DisconnectedError") return "the connection is lost";
    return error.message;
  }
  return String(error);
}

/** @param {string} text */
function tag(text) {
  const element = document.createElement("span");
  element.className = "tag";
  element.textContent = text;
  return element;
}

/** @param {string} name */
function initial(name) {
  return (name.trim()[0] ?? "?").toUpperCase();
}

/**
 * A colour for a name, the same on every page.
 * @param {string} name
 */
function hue(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 360;
  return hash;
}

// -- wiring -------------------------------------------------------------------------------------------------

ui.signinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.signinName.value.trim();
  const room = ui.signinRoom.value.trim() || "lobby";
  const problem =
    name.length === 0 || [...name].length > 24
      ? "Give a name of 1 to 24 characters."
      : ROOM_NAME.test(room)
        ? null
        : "Room names are 1 to 32 letters, digits, - or _.";
  ui.signinError.textContent = problem ?? "";
  ui.signinError.hidden = problem === null;
  if (problem === null) signIn(name, room);
});
ui.leave.addEventListener("click", signOut);
ui.postForm.addEventListener("submit", (event) => void post(event));
ui.postText.addEventListener("input", typed);
ui.shareFile.addEventListener("change", () => {
  const file = ui.shareFile.files?.[0];
  // Cleared, so that the same file can be picked again.
  ui.shareFile.value = "";
  if (file !== undefined) void share(file);
});
ui.rollCall.addEventListener("click", () => void rollCall());
ui.slowStart.addEventListener("click", () => void startSlowCall());
ui.slowCancel.addEventListener("click", () => session?.slow?.abort());
ui.switchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = ui.switchRoom.value.trim();
  ui.switchRoom.value = "";
  switchTo(room);
});
ui.rooms.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("button[data-room]") : null;
  if (target instanceof HTMLButtonElement && target.dataset.room !== undefined) switchTo(target.dataset.room);
});
ui.roomsRefresh.addEventListener("click", () => {
  if (session !== null) refreshRooms(session);
});

// A name and room in the page's address fill the form: /?name=alice&room=lobby
const query = new URLSearchParams(location.search);
ui.signinName.value = query.get("name") ?? "";
ui.signinRoom.value = query.get("room") ?? "lobby";
updateControls();
