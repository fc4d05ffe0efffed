"""The JavaScript code context's interpreter, run fileless as ``node -e KERNEL <request fd> <reply fd>``.

Same protocol as kernel_python.py. Cells run as scripts in one ``vm`` context, so top-level ``var``,
``let``, ``const``, functions and classes of a cell are there for the next one (as in a browser's
console); the cell's completion value is its result (a Promise is awaited first). ``display(value)``
adds a display output; an object with MIME-type keys (``{"text/html": "<b>x</b>"}``) is shown as that
bundle. ``console.log`` to a pipe is synchronous on Linux, so the cell's output is all written before
the end marker. SIGINT interrupts a running script (``breakOnSigint``); between cells it is ignored.
"""

NODE_KERNEL = r"""
'use strict';
const fs = require('fs');
const vm = require('vm');
const util = require('util');
const { createRequire } = require('module');
const requestFd = Number(process.argv[1]);
const replyFd = Number(process.argv[2]);
process.argv = [process.argv0];
process.on('SIGINT', () => {});
let outputs = [];
const MIME = ['text/plain', 'text/html', 'text/markdown', 'image/png', 'image/svg+xml', 'application/json'];

function bundle(value) {
  if (value !== null && typeof value === 'object' && Object.keys(value).length > 0
      && Object.keys(value).every((k) => MIME.includes(k))) {
    const data = {};
    for (const [k, v] of Object.entries(value)) data[k] = k === 'application/json' ? v : String(v);
    if (!('text/plain' in data)) data['text/plain'] = util.inspect(value);
    return data;
  }
  return { 'text/plain': util.inspect(value) };
}

function display(...values) {
  for (const value of values) outputs.push({ type: 'display', data: bundle(value) });
}

const sandbox = {
  console, process, Buffer, URL, URLSearchParams, TextEncoder, TextDecoder, AbortController,
  setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate,
  queueMicrotask, structuredClone, performance, fetch: globalThis.fetch, display,
  require: createRequire(process.cwd() + '/'),
};
sandbox.global = sandbox;
const context = vm.createContext(sandbox, { name: 'context' });
let cellCount = 0;

async function runCell(code) {
  cellCount += 1;
  const script = new vm.Script(code, { filename: `<cell-${cellCount}>` });
  let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
  if (value !== null && typeof value === 'object' && typeof value.then === 'function') value = await value;
  if (value !== undefined) outputs.push({ type: 'result', data: bundle(value) });
}

// The error's stack down to the cell's own frames: the kernel's frames below them are noise.
function cellStack(err) {
  if (!err || !err.stack) return String(err);
  const lines = String(err.stack).split('\n');
  const end = lines.findIndex((line) => /node:vm|\[eval\]|node:internal/.test(line));
  return (end > 0 ? lines.slice(0, end) : lines).join('\n');
}

function finish(nonce, reply) {
  reply.outputs = outputs;
  const marker = `\x1e${nonce}\x1e`;
  for (const fd of [1, 2]) { try { fs.writeSync(fd, marker); } catch (e) { /* closed by the cell */ } }
  let text;
  try { text = JSON.stringify(reply); } catch (e) {
    text = JSON.stringify({ status: 'error', ename: 'TypeError', evalue: String(e), outputs: [] });
  }
  fs.writeSync(replyFd, text + '\n');
}

let pending = '';
const queue = [];
let busy = false;

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const request = JSON.parse(queue.shift());
    outputs = [];
    let reply = { status: 'ok' };
    try {
      await runCell(request.code);
    } catch (err) {
      const name = err && err.name ? err.name : typeof err;
      const interrupted = err && err.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
      reply = { status: 'error', ename: interrupted ? 'KeyboardInterrupt' : name,
                evalue: err && err.message !== undefined ? String(err.message) : String(err) };
      process.stderr.write(cellStack(err) + '\n');
    }
    finish(request.nonce, reply);
  }
  busy = false;
}

// A pipe read through libuv's event loop (net.Socket), not fs reads on the thread pool: faster replies.
const input = new (require('net').Socket)({ fd: requestFd, readable: true, writable: false });
input.on('data', (chunk) => {
  pending += chunk.toString('utf8');
  let newline;
  while ((newline = pending.indexOf('\n')) >= 0) {
    queue.push(pending.slice(0, newline));
    pending = pending.slice(newline + 1);
  }
  drain();
});
input.on('end', () => process.exit(0));
"""
