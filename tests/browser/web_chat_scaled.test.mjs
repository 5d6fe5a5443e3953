// The web_chat demo scaled out, in a real browser: two web_chat servers share one hub through a
// redis-server of the test's own (on a free port), each started with `--redis` on a port of its own;
// alice's page is on the first, bob's on the second. They see each other in the room, typing and
// messages go both ways, a roll call held by alice is answered by bob's page on the other server, and
// bob signing out is seen by alice. Every step awaits what it expects (a selector, a page state, a line a
// server prints); nothing sleeps.
//
// Run from the repository's root: node --test tests/browser/web_chat_scaled.test.mjs
// Environment: as web_chat.test.mjs (the web_chat binary must have the redis feature: cargo build
// --features redis --example web_chat), and BIRPC_REDIS_SERVER (else redis-server on the PATH, Debian's
// package). Without redis-server, or with a web_chat built without the feature, the test is skipped,
// saying why, except on CI (CI=true), where it fails.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  ChatServer,
  ON_CI,
  PATIENCE_MS,
  RedisServer,
  launchChromium,
  redisServerBinary,
  webChatBinary,
  within,
} from "./support.mjs";

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {import("node:test").TestContext} TestContext */

const ROOM = "lobby";
const VIEWPORT = { width: 1040, height: 840 };

const redisBinary = redisServerBinary();
const NO_REDIS =
  "the two-server test needs redis-server: install it (Debian: apt-get install redis-server), or set BIRPC_REDIS_SERVER";
if (redisBinary === null && !ON_CI) console.log(`SKIPPED: ${NO_REDIS}`);

/** Why the test cannot run here, once found out (it is then skipped). @type {string | null} */
let unavailable = null;
/** @type {RedisServer | undefined} */
let redis;
/** The two servers of the hub. @type {ChatServer | undefined} */
let first;
/** @type {ChatServer | undefined} */
let second;
/** Their numbers in the hub. */
const nodes = { first: 0, second: 0 };
/** @type {import("playwright-core").Browser | undefined} */
let browser;
/** @type {Page} */
let alice;
/** @type {Page} */
let bob;
/** Errors thrown in the pages, which fail the suite. @type {string[]} */
const pageErrors = [];

/**
 * Whether the test is to be skipped (it says so).
 * @param {TestContext} t
 */
function skipped(t) {
  if (unavailable === null) return false;
  t.skip(unavailable);
  return true;
}

/**
 * Starts a web_chat server of the hub on `redis`, and reads its number in the hub from what it prints.
 * @param {string} binary
 * @param {RedisServer} redis
 */
async function startNode(binary, redis) {
  const server = await ChatServer.start(binary, "127.0.0.1:0", ["--redis", redis.url, "--hub", "web_chat_scaled"]);
  const line = await server.nextLine(/^node \d+ of the hub$/, 0);
  return { server, node: Number(/\d+/.exec(line)?.[0]) };
}

/**
 * Opens a page of its own (its own browser context, like another person) on `server` and signs in.
 * @param {ChatServer} server
 * @param {string} name
 */
async function signIn(server, name) {
  const context = await /** @type {import("playwright-core").Browser} */ (browser).newContext({ viewport: VIEWPORT });
  context.setDefaultTimeout(PATIENCE_MS);
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(`${name} console: ${message.text()}`);
  });
  await page.goto(server.url);
  await page.fill("#signin-name", name);
  await page.fill("#signin-room", ROOM);
  await page.click("#signin-submit");
  await page.waitForSelector("#status[data-state=connected]");
  await page.waitForSelector(`#members .member[data-name="${name}"]`);
  await page.locator("#activity[data-state=live]").waitFor();
  return page;
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
 * The senders and texts of a page's messages, in order.
 * @param {Page} page
 */
function messages(page) {
  return page.$$eval("#messages .message", (items) =>
    items.map((item) => [item.querySelector(".from")?.textContent, item.querySelector(".text")?.textContent]),
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
 * Waits until a page's activity panel shows these figures (those of its own server).
 * @param {Page} page
 * @param {number} members
 * @param {number} messages
 */
async function seesFigures(page, members, messages) {
  await page.locator("#activity-members").filter({ hasText: new RegExp(`^${members}$`) }).waitFor();
  await page.locator("#activity-messages").filter({ hasText: new RegExp(`^${messages}$`) }).waitFor();
}

describe(
  "the web_chat demo on two servers sharing a hub on Redis",
  // Without redis-server the test is skipped, except on CI, where `before` fails.
  { timeout: 180_000, skip: redisBinary === null && !ON_CI ? NO_REDIS : false },
  () => {
    before(async () => {
      if (redisBinary === null) throw new Error(`on CI nothing may be skipped: ${NO_REDIS}`);
      const binary = webChatBinary();
      redis = await RedisServer.start(redisBinary);
      try {
        const started = await startNode(binary, redis);
        [first, nodes.first] = [started.server, started.node];
      } catch (error) {
        // A web_chat built without the redis feature says so, and how to build it.
        if (ON_CI || !/needs the redis feature/.test(String(error))) throw error;
        unavailable = `${binary} was built without the redis feature: cargo build --features redis --example web_chat`;
        console.log(`SKIPPED: ${unavailable}`);
        return;
      }
      const started = await startNode(binary, redis);
      [second, nodes.second] = [started.server, started.node];
      assert.notEqual(nodes.first, nodes.second);
      browser = await launchChromium();
    });

    after(async () => {
      await browser?.close();
      await first?.kill();
      await second?.kill();
      await redis?.kill();
    });

    test("alice on one server and bob on the other see each other in the room", { timeout: 60_000 }, async (t) => {
      if (skipped(t)) return;
      const [one, two] = [/** @type {ChatServer} */ (first), /** @type {ChatServer} */ (second)];
      const aliceJoined = one.nextLine(/^alice joined lobby$/, 0);
      alice = await signIn(one, "alice");
      await aliceJoined;
      // The page says which server of the hub it is on.
      assert.equal(await alice.textContent("#node"), `node ${nodes.first}`);

      const bobJoined = two.nextLine(/^bob joined lobby$/, 0);
      bob = await signIn(two, "bob");
      await bobJoined;
      assert.equal(await bob.textContent("#node"), `node ${nodes.second}`);
      // bob's server asked alice's page, on the other server, its name; alice's page was told of bob
      // arriving through the hub.
      await seesMembers(bob, ["alice", "bob"]);
      await seesMembers(alice, ["alice", "bob"]);
      await alice.waitForSelector("#messages .divider >> text=bob joined");
      // The room counts everyone, whatever their server.
      for (const page of [alice, bob]) {
        await page.locator('#rooms button[data-room="lobby"] .tag').filter({ hasText: /^2$/ }).waitFor();
      }
      // The live activity is each server's own: one page here, on each.
      await seesFigures(alice, 1, 0);
      await seesFigures(bob, 1, 0);
    });

    test("typing and messages go from each server to the other", { timeout: 60_000 }, async (t) => {
      if (skipped(t)) return;
      await alice.type("#post-text", "Hi");
      await bob.waitForSelector("#typing.visible");
      assert.equal(await bob.textContent("#typing"), "alice is typing…");
      await alice.fill("#post-text", "");

      await post(alice, "Hello from the first server!");
      await seesMessage(bob, "alice", "Hello from the first server!");
      await post(bob, "Hello back from the second.");
      await seesMessage(alice, "bob", "Hello back from the second.");
      // Both pages show both messages, once each, in the order they were posted.
      for (const page of [alice, bob]) {
        assert.deepEqual(await messages(page), [
          ["alice", "Hello from the first server!"],
          ["bob", "Hello back from the second."],
        ]);
      }
      // Their ids say which server took them.
      const ids = await alice.$$eval("#messages .message", (items) => items.map((item) => Number(item.getAttribute("data-id"))));
      assert.deepEqual(
        ids.map((id) => Math.floor(id / 2 ** 32)),
        [nodes.first, nodes.second],
      );
      // Each server counts the messages it took.
      await seesFigures(alice, 1, 1);
      await seesFigures(bob, 1, 1);
    });

    test("a roll call held by alice reaches bob on the other server", { timeout: 60_000 }, async (t) => {
      if (skipped(t)) return;
      const held = /** @type {ChatServer} */ (first).nextLine(/^alice holds a roll call in lobby$/);
      const asked = bob.waitForSelector(".notice.question >> text=alice asks whether you are still there");
      await alice.click("#roll-call");
      await within("alice's server to hold the roll call", held);
      await asked;
      await alice.waitForSelector('#roll-call-results .answer.answered[data-name="bob"]');
      await alice.waitForSelector('#roll-call-results .answer.answered[data-name="alice"]');
      const answers = await alice.$$eval("#roll-call-results .answer", (items) =>
        items.map((item) => [item.querySelector(".answer-name")?.textContent, item.querySelector(".answer-text")?.textContent]),
      );
      assert.deepEqual(answers, [
        ["alice", "yes — alice is here"],
        ["bob", "yes — bob is here"],
      ]);
    });

    test("bob signs out: alice, on the other server, sees him leave", { timeout: 60_000 }, async (t) => {
      if (skipped(t)) return;
      const left = /** @type {ChatServer} */ (second).nextLine(/^bob left lobby$/);
      await bob.click("#leave");
      await within("bob's server to see him leave", left);
      await seesMembers(alice, ["alice"]);
      await alice.waitForSelector("#messages .divider >> text=bob left");
      await alice.locator('#rooms button[data-room="lobby"] .tag').filter({ hasText: /^1$/ }).waitFor();
    });

    test("no page threw an error", (t) => {
      if (skipped(t)) return;
      assert.deepEqual(pageErrors, []);
    });
  },
);
