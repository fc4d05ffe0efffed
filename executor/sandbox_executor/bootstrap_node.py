"""The JavaScript child's bootstrap, run fileless as ``node -e BOOTSTRAP <fd>``.

The rule for user code:

* stdin carries one JSON document ``{"code": str, "event": object}``;
* the code runs as a CommonJS module body (``vm.compileFunction`` with the usual ``exports,
  require, module, __filename, __dirname``; ``require`` resolves from the workspace), with
  ``<handler>`` as its file name in stack traces;
* if it exports a handler - ``module.exports.handler`` / ``exports.handler``, or ``module.exports``
  itself being a function - the bootstrap awaits ``handler(event)``, writes ``JSON.stringify`` of
  the result (``undefined`` becomes ``null``) to the extra pipe fd ``argv[1]`` and exits 0 at once,
  like a Lambda invocation ending when its promise settles (timers left behind do not run);
* otherwise it is a plain script: it runs to completion (the event loop drains naturally) and
  the return value is ``null``;
* errors print their stack (minus the bootstrap's own frames) to stderr and exit 1; a result
  that ``JSON.stringify`` rejects (a BigInt, a cycle) prints ``return value is not JSON
  serializable: ...`` and exits 1.

Node writes to pipes synchronously on Linux, so ``process.exit`` after ``console.log`` loses nothing.
"""

NODE_BOOTSTRAP = r"""
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');

const retFd = Number(process.argv[1]);
process.argv.splice(1, 1);

// Stack frames of this bootstrap and of node's eval machinery are noise to the user.
const NOISE = /^\s+at .*(\[eval\]|node:internal\/|node:vm:)/;

function die(err) {
  const text = String((err && err.stack) || err);
  process.stderr.write(text.split('\n').filter((line) => !NOISE.test(line)).join('\n') + '\n');
  process.exit(1);
}

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
    }
  }
}

async function main() {
  const request = JSON.parse(fs.readFileSync(0, 'utf8'));
  const dir = process.cwd();
  const filename = path.join(dir, '<handler>');
  const mod = new Module(filename, null);
  mod.filename = filename;
  mod.paths = Module._nodeModulePaths(dir);
  const userRequire = Module.createRequire(filename);
  const params = ['exports', 'require', 'module', '__filename', '__dirname'];
  const body = vm.compileFunction(request.code, params, { filename: '<handler>' });
  body.call(mod.exports, mod.exports, userRequire, mod, filename, dir);
  const exported = mod.exports;
  let handler = null;
  if (typeof exported === 'function') handler = exported;
  else if (exported && typeof exported.handler === 'function') handler = exported.handler;
  if (handler === null) return;
  const result = await handler(request.event);
  let text;
  try {
    text = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    process.stderr.write('return value is not JSON serializable: ' + err.message + '\n');
    process.exit(1);
  }
  writeAll(retFd, text === undefined ? 'null' : text);
  fs.closeSync(retFd);
  process.exit(0);
}

main().catch(die);
"""
