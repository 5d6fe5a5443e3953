// vscode-jsonrpc against birpc over a child's stdio, Content-Length framing (the LSP base protocol).
//
//   node peer.js client INTEROP_SERVER   spawns `INTEROP_SERVER --listen stdio?framing=content-length`
//                                        and drives it; exits 0 when every check passed
//   node peer.js server                  serves over this process's stdin and stdout (spawned by birpc)
'use strict';

const { spawn } = require('node:child_process');
const assert = require('node:assert/strict');
const rpc = require('vscode-jsonrpc/node');

async function client(serverPath) {
  const child = spawn(serverPath, ['--listen', 'stdio?framing=content-length'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(child.stdout),
    new rpc.StreamMessageWriter(child.stdin),
  );
  // What birpc's server asks this side.
  connection.onRequest('whoami', () => 'node');
  connection.onRequest('fails', () => {
    throw new rpc.ResponseError(4242, 'refused by node', { why: 'asked to' });
  });
  const poked = new Promise((resolve) => connection.onNotification('poked', (...params) => resolve(params)));
  connection.listen();

  assert.equal(await connection.sendRequest('subtract', 42, 23), 19);
  assert.equal(await connection.sendRequest('subtract', { minuend: 23, subtrahend: 42 }), -19);
  assert.deepEqual(await connection.sendRequest('get_data'), ['hello', 5]);
  // birpc calls this side back while answering.
  assert.equal(await connection.sendRequest('ask_client', { method: 'whoami' }), 'node');
  // This side's error object reaches birpc and comes back unchanged.
  await assert.rejects(connection.sendRequest('ask_client', { method: 'fails' }), (error) => {
    assert.equal(error.code, 4242);
    assert.equal(error.message, 'refused by node');
    assert.deepEqual(error.data, { why: 'asked to' });
    return true;
  });
  // birpc's own errors.
  await assert.rejects(connection.sendRequest('no_such_method'), (error) => error.code === -32601);
  await assert.rejects(connection.sendRequest('subtract', 'x', 1), (error) => error.code === -32602);
  // A notification from birpc.
  await connection.sendRequest('notify_client', { method: 'poked', params: [1, 'two'] });
  assert.deepEqual(await poked, [1, 'two']);
  // A notification to birpc (it has no such method; a notification is never answered), then a request
  // that proves the connection went on.
  await connection.sendNotification('nothing_here', 1, 2);
  assert.deepEqual(await connection.sendRequest('echo', { value: { a: [1, null] } }), { a: [1, null] });

  connection.dispose();
  child.stdin.end();
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, 'the interop server exits 0 when its stdin ends');
  console.log('vscode-jsonrpc client: ok');
}

function server() {
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(process.stdin),
    new rpc.StreamMessageWriter(process.stdout),
  );
  connection.onRequest('add', (a, b) => a + b);
  connection.onRequest('fail', () => {
    throw new rpc.ResponseError(-32050, 'failed on purpose', { n: 1 });
  });
  // Calls birpc back before answering.
  connection.onRequest('ask_back', async () => {
    const name = await connection.sendRequest('whoami');
    return `node asked ${name}`;
  });
  connection.onNotification('note', (...params) => connection.sendNotification('noted', params));
  connection.onClose(() => process.exit(0));
  connection.listen();
}

const [mode, serverPath] = process.argv.slice(2);
if (mode === 'client') {
  client(serverPath).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (mode === 'server') {
  server();
} else {
  console.error('usage: node peer.js client INTEROP_SERVER | node peer.js server');
  process.exit(2);
}
