// Times a browser upload through Coffer's web app: from picking the file
// to its version being committed. Environment: COFFER_URL, UPLOAD_FILE,
// CHROMIUM. Prints one JSON line: {"seconds": …, "hashing": …, "bytes": …}.
//
// Chromium is driven over the DevTools protocol directly, not through
// Playwright: Playwright enables the Network domain, which makes Chromium
// copy every request body (here, every chunk) into protocol messages to the
// driver. That traffic cost more CPU than the upload itself, and a user's
// browser never pays it. This driver only uses Page, Runtime and DOM.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const file = process.env.UPLOAD_FILE;
const name = path.basename(file);
const chrome = spawn(process.env.CHROMIUM || '/usr/bin/chromium', [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync', '--remote-debugging-pipe',
  'about:blank',
], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });

// The pipe protocol: JSON messages, each ended by a NUL byte; fd 3 is
// Chromium's input, fd 4 its output.
const [toChrome, fromChrome] = [chrome.stdio[3], chrome.stdio[4]];
let nextId = 1;
const pending = new Map();
let buffered = '';
fromChrome.on('data', (chunk) => {
  buffered += chunk.toString();
  let end;
  while ((end = buffered.indexOf('\0')) !== -1) {
    const msg = JSON.parse(buffered.slice(0, end));
    buffered = buffered.slice(end + 1);
    const wait = msg.id && pending.get(msg.id);
    if (!wait) continue;
    pending.delete(msg.id);
    if (msg.error) wait.reject(new Error(`${wait.method}: ${msg.error.message}`));
    else wait.resolve(msg.result);
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  toChrome.write(JSON.stringify({ id, method, params, sessionId }) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { targetInfos } = await send('Target.getTargets');
  const page = targetInfos.find((t) => t.type === 'page');
  const { sessionId } = await send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
  const evaluate = async (expression) =>
    (await send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)).result.value;
  await send('Page.navigate', { url: process.env.COFFER_URL }, sessionId);
  // Sign in (COFFER_USER / COFFER_PASSWORD) when the app asks.
  for (let i = 0; ; i++) {
    if (await evaluate(`!!document.querySelector('[data-testid=file-input]')`)) break;
    if (await evaluate(`!!document.querySelector('[data-testid=login-form]')`)) {
      const set = (sel, v) => `(() => { const e = document.querySelector('${sel}');
        e.value = ${JSON.stringify(v)}; e.dispatchEvent(new Event('input', { bubbles: true })); })()`;
      await evaluate(set('[data-testid=login-user]', process.env.COFFER_USER ?? ''));
      await evaluate(set('[data-testid=login-password]', process.env.COFFER_PASSWORD ?? ''));
      await evaluate(`document.querySelector('[data-testid=login-submit]').click()`);
      break;
    }
    if (i > 600) throw new Error('the web app rendered neither a login form nor its file input');
    await sleep(100);
  }
  const input = '[data-testid=file-input]';
  for (let i = 0; !(await evaluate(`!!document.querySelector('${input}')`)); i++) {
    if (i > 600) throw new Error('the web app did not render its file input');
    await sleep(100);
  }
  const { root } = await send('DOM.getDocument', {}, sessionId);
  const { nodeId } = await send('DOM.querySelector', { nodeId: root.nodeId, selector: input }, sessionId);
  const stage = `document.querySelector('[data-testid=upload-item][data-name=${JSON.stringify(name)}]')?.dataset.stage`;
  const start = Date.now();
  await send('DOM.setFileInputFiles', { nodeId, files: [path.resolve(file)] }, sessionId);
  let hashed = null;
  for (;;) {
    const s = await evaluate(stage);
    if (s && s !== 'hashing' && hashed === null) hashed = Date.now();
    if (s === 'done') break;
    if (s === 'failed' || s === 'cancelled') throw new Error(`upload ${s}`);
    if (Date.now() - start > 1800000) throw new Error('upload did not finish in 30 minutes');
    await sleep(50);
  }
  const seconds = (Date.now() - start) / 1000;
  console.log(JSON.stringify({ seconds, hashing: (hashed - start) / 1000, bytes: fs.statSync(file).size }));
}

try {
  await main();
} finally {
  const exited = new Promise((r) => chrome.once('exit', r));
  await Promise.race([send('Browser.close').catch(() => {}), sleep(5000)]);
  chrome.kill();
  await exited;
}
