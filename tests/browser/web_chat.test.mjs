// The web_chat demo in a real browser: two pages (alice and bob) in Chromium, against the real server.
// Every step awaits what it expects (a selector, a page state, a line the server prints); nothing sleeps.
// Besides calls both ways, it drives a stream each way: the room's live activity (the server streams it to
// each page) and a shared file (the page uploads it in chunks).
//
// Run from the repository's root: node --test tests/browser/
// Environment: BIRPC_WEB_CHAT (the server binary; else built with cargo), BIRPC_CHROMIUM (else
// /usr/bin/chromium), BIRPC_SHOW_SERVER=1 to echo the server's stdout.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { ChatServer, PATIENCE_MS, ROOT, launchChromium, webChatBinary, within } from "./support.mjs";

/** @typedef {import("playwright-core").Page} Page */

const ROOM = "lobby";
const SCREENSHOT = path.join(ROOT, "target", "browser", "web_chat.png");
const VIEWPORT = { width: 1040, height: 840 };

/** @type {string} */
let binary;
/** @type {ChatServer} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Page} */
let alice;
/** @type {Page} */
let bob;
/** Errors thrown in the pages, which fail the suite. @type {string[]} */
const pageErrors = [];

/**
 * Opens a page of its own (its own browser context, like another person) and signs in.
 * @param {string} name
 * @param {string} room
 */
async function signIn(name, room) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  context.setDefaultTimeout(PATIENCE_MS);
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on("console", (message) => {
    // While the server is down, Chromium logs each failed connection attempt: that is expected.
    if (message.type() === "error" && !/^WebSocket connection to .* failed/.test(message.text())) {
      pageErrors.push(`${name} console: ${message.text()}`);
    }
  });
  await page.goto(server.url);
  await page.fill("#signin-name", name);
  await page.fill("#signin-room", room);
  await page.click("#signin-submit");
  await page.waitForSelector("#status[data-state=connected]");
  await page.waitForSelector(`#members .member[data-name="${name}"]`);
  // The room's activity stream is open: from now on, whatever happens in the room shows in its panel.
  await page.locator("#activity[data-state=live]").waitFor();
  return page;
}

/**
 * Waits until a page's activity panel shows, among its latest items, one of this kind by this member
 * (the newest item, if `newest`).
 * @param {Page} page
 * @param {"Joined" | "Left" | "Posted" | "Shared"} kind
 * @param {string} name
 * @param {{ newest?: boolean }} [options]
 */
async function seesActivity(page, kind, name, { newest = false } = {}) {
  const item = `.activity-item${newest ? ":first-child" : ""}[data-kind="${kind}"][data-name="${name}"]`;
  const found = page.locator(`#activity-log ${item}`).first();
  await found.waitFor();
  return (await found.locator(".activity-text").textContent()) ?? "";
}

/**
 * Waits until a page's activity panel shows these figures: pages in the room, messages posted to it.
 * @param {Page} page
 * @param {number} members
 * @param {number} messages
 */
async function seesFigures(page, members, messages) {
  await page.locator("#activity-members").filter({ hasText: new RegExp(`^${members}$`) }).waitFor();
  await page.locator("#activity-messages").filter({ hasText: new RegExp(`^${messages}$`) }).waitFor();
}

/**
 * A text file of exactly `size` bytes of UTF-8 that starts with `firstLine`, and how many characters and
 * lines it has.
 * @param {number} size
 * @param {string} firstLine
 */
function textFile(size, firstLine) {
  const lines = [firstLine];
  let used = Buffer.byteLength(firstLine) + 1;
  for (let n = 1; ; n++) {
    const line = `${n}: naïve café — the quick brown fox jumps over the lazy dog`;
    const cost = Buffer.byteLength(line) + 1;
    if (used + cost > size) break;
    lines.push(line);
    used += cost;
  }
  const padding = ".".repeat(size - used);
  const text = `${lines.join("\n")}\n${padding}`;
  const buffer = Buffer.from(text);
  assert.equal(buffer.length, size);
  return { buffer, characters: text.length, lines: lines.length + (padding === "" ? 0 : 1) };
}

/**
 * The names in a page's member list.
 * @param {Page} page
 */
function members(page) {
  return page.$$eval("#members .member", (items) => items.map((item) => item.getAttribute("data-name")));
}

/**
 * The texts of a page's messages, in order.
 * @param {Page} page
 */
function messageTexts(page) {
  return page.$$eval("#messages .message .text", (items) => items.map((item) => item.textContent));
}

/**
 * Waits until a page shows a message with this text from this sender.
 * @param {Page} page
 * @param {string} from
 * @param {string} text
 */
async function seesMessage(page, from, text) {
  await page.waitForFunction(
    ([from, text]) =>
      [...document.querySelectorAll("#messages .message")].some(
        (item) => item.querySelector(".from")?.textContent === from && item.querySelector(".text")?.textContent === text,
      ),
    [from, text],
  );
}

/**
 * Posts a message from a page and waits until its input is cleared (the server took it).
 * @param {Page} page
 * @param {string} text
 */
async function post(page, text) {
  await page.fill("#post-text", text);
  await page.click("#post-submit");
  await page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.querySelector("#post-text")).value === "");
}

/**
 * Waits until a page's member list is exactly `names`.
 * @param {Page} page
 * @param {string[]} names
 */
async function seesMembers(page, names) {
  await page.waitForFunction(
    (names) =>
      JSON.stringify([...document.querySelectorAll("#members .member")].map((item) => item.getAttribute("data-name"))) ===
      JSON.stringify(names),
    names,
  );
}

describe("the web_chat page in Chromium", { timeout: 180_000 }, () => {
  before(async () => {
    binary = webChatBinary();
    server = await ChatServer.start(binary, "127.0.0.1:0");
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.kill();
  });

  test("two pages join a room, see each other and exchange messages", { timeout: 60_000 }, async () => {
    const joined = server.nextLine(/^alice joined lobby$/, 0);
    alice = await signIn("alice", ROOM);
    await joined;
    assert.equal(await alice.textContent("#status"), "connected");
    assert.equal(await alice.textContent("#room-name"), ROOM);

    // Each page opened the room's activity stream through the typed client.
    await server.nextLine(/^alice watches lobby$/, 0);
    await seesFigures(alice, 1, 0);

    bob = await signIn("bob", ROOM);
    await seesMembers(alice, ["alice", "bob"]);
    await seesMembers(bob, ["alice", "bob"]);
    // alice's activity panel shows bob arriving, as the server streams it.
    assert.equal(await seesActivity(alice, "Joined", "bob", { newest: true }), "bob joined");
    await seesFigures(alice, 2, 0);
    await seesFigures(bob, 2, 0);

    // Typing shows on the other page, which is told by the server.
    await alice.type("#post-text", "Hi");
    await bob.waitForSelector("#typing.visible");
    assert.equal(await bob.textContent("#typing"), "alice is typing…");
    await alice.fill("#post-text", "");

    await post(alice, "Hello bob!");
    await seesMessage(bob, "alice", "Hello bob!");
    await post(bob, "Hi alice, good to see you.");
    await seesMessage(alice, "bob", "Hi alice, good to see you.");
    // ... and bob posting, after alice did; bob sees the same, his own post as his.
    assert.equal(await seesActivity(alice, "Posted", "bob", { newest: true }), "bob posted #2");
    assert.equal(await seesActivity(alice, "Posted", "alice"), "you posted #1");
    assert.equal(await seesActivity(bob, "Posted", "bob", { newest: true }), "you posted #2");
    await seesFigures(alice, 2, 2);
    await seesFigures(bob, 2, 2);

    // Each page has both messages, once each, in the order they were posted, with a time.
    for (const page of [alice, bob]) {
      assert.deepEqual(await messageTexts(page), ["Hello bob!", "Hi alice, good to see you."]);
      const times = await page.$$eval("#messages .message time", (items) => items.map((item) => item.textContent));
      assert.ok(times.every((time) => /\d/.test(time ?? "")), `times shown: ${times}`);
    }
    // The typing indicator stops when alice's message arrives.
    await bob.waitForSelector("#typing:not(.visible)", { state: "attached" });
  });

  test("the server calls each page: a roll call", { timeout: 60_000 }, async () => {
    const held = server.nextLine(/^bob holds a roll call in lobby$/);
    const asked = alice.waitForSelector(".notice.question >> text=bob asks whether you are still there");
    await bob.click("#roll-call");
    await held;
    await asked;
    await bob.waitForSelector('#roll-call-results .answer.answered[data-name="bob"]');
    await bob.waitForSelector('#roll-call-results .answer.answered[data-name="alice"]');
    const answers = await bob.$$eval("#roll-call-results .answer", (items) =>
      items.map((item) => [item.querySelector(".answer-name")?.textContent, item.querySelector(".answer-text")?.textContent]),
    );
    assert.deepEqual(answers, [
      ["alice", "yes — alice is here"],
      ["bob", "yes — bob is here"],
    ]);
    // bob was asked too, by himself.
    await bob.waitForSelector(".notice.question >> text=bob asks whether you are still there");
  });

  test("the server restarts: the pages say so, reconnect by themselves and rejoin the room", { timeout: 90_000 }, async () => {
    const port = server.port;
    await server.kill();

    for (const page of [alice, bob]) {
      await page.waitForSelector("#status[data-state=reconnecting]");
      // The activity stream ended with the connection: the panel says it is not live.
      await page.locator("#activity[data-state=stale]").waitFor();
      const status = await page.textContent("#status");
      assert.match(status ?? "", /^connection lost — reconnecting( \(attempt \d+\))?…$/);
      // Nothing can be sent meanwhile.
      assert.equal(await page.isDisabled("#post-submit"), true);
    }
    // The pages keep retrying: the attempt count is shown.
    await alice.waitForFunction(() => /\(attempt \d+\)…$/.test(document.querySelector("#status")?.textContent ?? ""));

    server = await ChatServer.start(binary, `127.0.0.1:${port}`);
    assert.equal(server.port, port);
    // Each page joins its room again on the new server, by itself.
    await Promise.all([server.nextLine(/^alice joined lobby$/, 0), server.nextLine(/^bob joined lobby$/, 0)]);
    for (const page of [alice, bob]) {
      await page.waitForSelector("#status[data-state=connected]");
      assert.equal(await page.textContent("#status"), "connected");
      await seesMembers(page, ["alice", "bob"]);
      await page.waitForSelector("#post-submit:not([disabled])");
      // A new activity stream, on the new server: its rooms start afresh.
      await page.locator("#activity[data-state=live]").waitFor();
      await seesFigures(page, 2, 0);
    }

    // The new server starts its rooms afresh; a new message goes through all the same.
    await post(bob, "Still here after the restart?");
    await seesMessage(alice, "bob", "Still here after the restart?");
    await post(alice, "Yes, reconnected by myself.");
    await seesMessage(bob, "alice", "Yes, reconnected by myself.");
    for (const page of [alice, bob]) {
      // What was shown before stays, once; the restart is said.
      assert.deepEqual(await messageTexts(page), [
        "Hello bob!",
        "Hi alice, good to see you.",
        "Still here after the restart?",
        "Yes, reconnected by myself.",
      ]);
      await page.waitForSelector("#messages .divider >> text=The server restarted");
      await seesFigures(page, 2, 2);
    }
  });

  test("a call is cancelled from the page", { timeout: 60_000 }, async () => {
    const started = server.nextLine(/^a slow call started$/);
    const cancelled = server.nextLine(/^a slow call was cancelled by the page$/);
    await alice.click("#slow-start");
    await alice.waitForSelector("#slow-status[data-state=running]");
    // The server is working on it before the page withdraws it.
    await within("the server to start the slow call", started);
    assert.equal(await alice.isEnabled("#slow-cancel"), true);
    await alice.click("#slow-cancel");
    await alice.waitForSelector("#slow-status[data-state=cancelled]");
    assert.match((await alice.textContent("#slow-status")) ?? "", /^cancelled/);
    await within("the server to say the slow call was cancelled", cancelled);
    // The page is usable again: the call can be started anew.
    await alice.waitForSelector("#slow-start:not([disabled])");
    await alice.waitForSelector("#slow-cancel[disabled]");
  });

  test("a page shares a text file: it goes up in chunks and the room sees it", { timeout: 60_000 }, async () => {
    const notes = textFile(200 * 1024, "Notes for alice: the plan, in full.");
    const shared = server.nextLine(/^bob shared notes\.txt \(\d+ bytes in \d+ chunks\) in lobby$/);
    await bob.locator("#share-file").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: notes.buffer });

    // The server took it whole, in several chunks (the page sends at most 16 Ki characters in each).
    const [, bytes, chunks] = /\((\d+) bytes in (\d+) chunks\)/.exec(await shared) ?? [];
    assert.equal(Number(bytes), 204_800);
    assert.ok(Number(chunks) >= Math.ceil(notes.characters / 16_384), `${chunks} chunks`);

    // Everyone in the room sees the message about it, with its first line.
    for (const page of [alice, bob]) {
      await seesMessage(page, "bob", "📎 notes.txt (204800 bytes)");
      const card = page.locator('#messages .message .attachment[data-name="notes.txt"]');
      assert.equal(await card.getAttribute("data-bytes"), "204800");
      assert.equal(await card.locator(".attachment-preview").textContent(), "Notes for alice: the plan, in full.");
      assert.equal(await card.locator(".attachment-lines").textContent(), `${notes.lines.toLocaleString("en")} lines`);
    }
    await bob.locator("#share-status[data-state=done]").waitFor();
    assert.equal(await bob.textContent("#share-text"), "Shared notes.txt (200 KB)");
    assert.equal(await seesActivity(alice, "Shared", "bob", { newest: true }), "bob shared notes.txt (200 KB)");
    await seesFigures(alice, 2, 3);

    // Past 1 MiB the server refuses it, which stops the upload there.
    const refused = server.nextLine(/^bob's file big\.txt was refused: over 1048576 bytes$/);
    await bob.locator("#share-file:not([disabled])").waitFor({ state: "attached" });
    await bob.locator("#share-file").setInputFiles({
      name: "big.txt",
      mimeType: "text/plain",
      buffer: textFile(1536 * 1024, "Far too much.").buffer,
    });
    await within("the server to refuse big.txt", refused);
    await bob.locator("#share-status[data-state=failed]").waitFor();
    assert.equal(await bob.textContent("#share-text"), "Not shared: files are at most 1 MiB");

    // A file that is not UTF-8 text: the page's reading fails, which ends the upload with an error.
    await bob.locator("#share-file:not([disabled])").waitFor({ state: "attached" });
    await bob.locator("#share-file").setInputFiles({
      name: "picture.png",
      mimeType: "image/png",
      buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00]),
    });
    await bob.locator("#share-status[data-state=failed]").filter({ hasText: "UTF-8" }).waitFor();
    assert.equal(await bob.textContent("#share-text"), "Not shared: the file is not UTF-8 text, or could not be read");

    // Nothing was posted: the next message follows the first file's.
    await bob.locator("#share-file:not([disabled])").waitFor({ state: "attached" });
    await post(bob, "That one was too big.");
    await seesMessage(alice, "bob", "That one was too big.");
    assert.deepEqual((await messageTexts(alice)).slice(-2), ["📎 notes.txt (204800 bytes)", "That one was too big."]);
    await seesFigures(alice, 2, 4);
  });

  test("a screenshot of the demo with two users", { timeout: 60_000 }, async () => {
    // A roll call, so that the picture shows the server calling the pages.
    await bob.click("#roll-call");
    await bob.waitForSelector('#roll-call-results .answer.answered[data-name="alice"]');
    await alice.waitForSelector(".notice.question");
    await post(alice, "Here's a picture of us both.");
    await seesMessage(bob, "alice", "Here's a picture of us both.");

    // Animations finished, so that items that just arrived are in place.
    const [left, right] = [await alice.screenshot({ animations: "disabled" }), await bob.screenshot({ animations: "disabled" })];
    const context = await browser.newContext({ viewport: { width: VIEWPORT.width * 2 + 36, height: VIEWPORT.height + 24 } });
    const page = await context.newPage();
    await page.setContent(`<!doctype html>
      <style>
        body { margin: 0; padding: 12px; display: flex; gap: 12px; background: #c9cfdb; }
        img { display: block; border-radius: 8px; box-shadow: 0 2px 10px rgb(0 0 0 / 20%); }
      </style>
      <img alt="alice" src="data:image/png;base64,${left.toString("base64")}">
      <img alt="bob" src="data:image/png;base64,${right.toString("base64")}">`);
    await page.waitForFunction(() => [...document.images].every((image) => image.complete && image.naturalWidth > 0));
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    await context.close();
    console.log(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);
  });

  test("a page switches rooms and comes back", { timeout: 60_000 }, async () => {
    const joined = server.nextLine(/^alice joined garden$/);
    const stopped = server.nextLine(/^alice stopped watching lobby$/);
    const watches = server.nextLine(/^alice watches garden$/);
    await alice.fill("#switch-room", "garden");
    await alice.click("#switch-submit");
    await joined;
    // The page cancelled the lobby's activity stream (had it not, the server would have ended it on the
    // join, saying so instead), and opened one of the garden's.
    await within("the server to drop alice's activity stream of the lobby", stopped);
    await within("alice's page to open the garden's activity stream", watches);
    await seesFigures(alice, 1, 0);
    assert.equal(await seesActivity(bob, "Left", "alice", { newest: true }), "alice left");
    await seesFigures(bob, 1, 5);
    await alice.waitForFunction(() => document.querySelector("#room-name")?.textContent === "garden");
    await seesMembers(alice, ["alice"]);
    await seesMembers(bob, ["bob"]);
    await bob.waitForSelector("#messages .divider >> text=alice left");
    assert.deepEqual(await messageTexts(alice), []);
    // The rooms in use, each with its count; the other one is a button back.
    await alice.waitForSelector('#rooms button[data-room="lobby"]:not([disabled])');
    await alice.waitForSelector('#rooms button[data-room="garden"][disabled]');

    await alice.click('#rooms button[data-room="lobby"]');
    await alice.waitForFunction(() => document.querySelector("#room-name")?.textContent === "lobby");
    await seesMembers(alice, ["alice", "bob"]);
    await seesMembers(bob, ["alice", "bob"]);
    assert.equal(await seesActivity(bob, "Joined", "alice", { newest: true }), "alice joined");
    await seesFigures(alice, 2, 5);
    // The room's history as the (restarted) server keeps it, the shared file with it.
    assert.deepEqual(await messageTexts(alice), [
      "Still here after the restart?",
      "Yes, reconnected by myself.",
      "📎 notes.txt (204800 bytes)",
      "That one was too big.",
      "Here's a picture of us both.",
    ]);
    await alice.locator('#messages .attachment[data-name="notes.txt"] .attachment-preview').waitFor();
  });

  test("no page threw an error", () => {
    assert.deepEqual(pageErrors, []);
  });
});
