// Drives Coffer's web app in real headless Chromium (Debian's, through
// playwright-core), and speaks grpc-web to the same server with a
// hand-framed client that shares no code with Coffer.
//
// Environment: COFFER_URL (the server), COFFER_USER and COFFER_PASSWORD (who
// signs in), COFFER_TOKEN (an access token for the hand-framed client),
// WORK_DIR (files written here for the calling test to compare),
// SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium), COFFER_CLI (the
// `coffer` binary, which uploads while the page is open). Exits non-zero
// on the first failed check.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const base = process.env.COFFER_URL;
const work = process.env.WORK_DIR;
const shots = process.env.SCREENSHOT_DIR;
fs.mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

const files = {
  alpha: crypto.randomBytes(3 * 1024 * 1024 + 5),
  beta1: crypto.randomBytes(1000),
  beta2: crypto.randomBytes(2000),
  gamma: crypto.randomBytes(700 * 1024),
  delta: crypto.randomBytes(5000),
  held: crypto.randomBytes(600 * 1024),
};
for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(work, k), v);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
// The share dialog's Copy button writes to the clipboard; the test reads it back.
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin });
const page = await context.newPage();
page.on('console', (m) => console.log(`[page] ${m.text()}`));
page.on('pageerror', (e) => console.log(`[page error] ${e}`));

const row = (name) => `[data-testid=file-row][data-name="${name}"]`;
async function uploaded(name) {
  const sel = `[data-testid=upload-item][data-name="${name}"]`;
  await page.waitForFunction((s) => {
    const items = [...document.querySelectorAll(s)];
    const last = items[items.length - 1];
    return last && ['done', 'failed', 'cancelled'].includes(last.dataset.stage);
  }, sel, { timeout: 180000 });
  const stage = await page.$$eval(sel, (els) => els[els.length - 1].dataset.stage);
  check(stage === 'done', `${name} uploaded (stage ${stage})`);
}
let lastDownloadUrl = null;
async function download(selector) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  lastDownloadUrl = dl.url();
  return fs.readFileSync(await dl.path());
}

try {
  await page.goto(base);
  // Signed out, the app asks for a login and shows no files.
  await page.waitForSelector('[data-testid=login-form]');
  check(!(await page.$('[data-testid=dropzone]')), 'no files before signing in');
  await page.fill('[data-testid=login-user]', process.env.COFFER_USER);
  await page.fill('[data-testid=login-password]', 'wrong password');
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=login-error]');
  check(true, 'a wrong password is refused with a message');
  await page.fill('[data-testid=login-password]', process.env.COFFER_PASSWORD);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=dropzone]');
  const who = (await page.textContent('[data-testid=whoami]')).trim();
  check(who === process.env.COFFER_USER, `the user's name is on screen ("${who}")`);
  // A reload signs back in silently (refresh token in this tab).
  await page.reload();
  await page.waitForSelector('[data-testid=dropzone]');
  check(true, 'a reload keeps the user signed in');
  // A file uploaded by the native gRPC client in the same run is listed.
  await page.waitForSelector('[data-testid=folder-row] >> text=native', { timeout: 30000 });
  check(true, 'the native client\'s upload is listed (folder native/)');
  await page.screenshot({ path: path.join(shots, 'empty-and-folder.png') });
  // A folder opens on its own listing (ListFiles with a delimiter):
  // inside native/ its file is listed, the top's entries are not, and
  // the breadcrumb leads back.
  await page.click('[data-testid=folder-row] >> text=native');
  await page.waitForSelector(row('native/from-grpc.bin'));
  check(await page.locator('[data-testid=folder-row]').count() === 0,
    'inside native/ only its own entries are listed');
  await page.click('.crumbs >> text=All files');
  await page.waitForSelector('[data-testid=folder-row] >> text=native');
  check(await page.locator(row('native/from-grpc.bin')).count() === 0,
    'back at the top, native/ is a folder again, not its files');

  // Two files by a real drop event carrying a DataTransfer.
  const dt = await page.evaluateHandle(({ a, b }) => {
    const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes(a)], 'alpha.bin'));
    dt.items.add(new File([bytes(b)], 'beta.txt'));
    return dt;
  }, { a: files.alpha.toString('base64'), b: files.beta1.toString('base64') });
  await page.dispatchEvent('[data-testid=dropzone]', 'dragover', { dataTransfer: dt });
  await page.dispatchEvent('[data-testid=dropzone]', 'drop', { dataTransfer: dt });
  await uploaded('alpha.bin');
  await uploaded('beta.txt');

  // One by the file picker.
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'gamma.dat', mimeType: 'application/octet-stream', buffer: files.gamma });
  await uploaded('gamma.dat');

  for (const [name, data] of [['alpha.bin', files.alpha], ['beta.txt', files.beta1], ['gamma.dat', files.gamma]]) {
    await page.waitForSelector(row(name));
    const size = await page.getAttribute(row(name), 'data-size');
    check(Number(size) === data.length, `${name} listed with size ${data.length}`);
  }
  await page.screenshot({ path: path.join(shots, 'files.png') });

  // A file the CLI uploads shows up in the open page without a reload
  // (the app follows the change feed over grpc-web).
  await page.evaluate(() => { window.__sameDocument = true; });
  const fromCli = path.join(work, 'from-cli.txt');
  fs.writeFileSync(fromCli, 'uploaded by the coffer CLI while the page was open');
  execFileSync(process.env.COFFER_CLI, ['--server', base, '--quiet', 'put', fromCli, 'from-cli.txt'], {
    env: { ...process.env, COFFER_TOKEN: process.env.COFFER_TOKEN, COFFER_STATE_DIR: path.join(work, 'cli-state') },
  });
  await page.waitForSelector(row('from-cli.txt'), { timeout: 30000 });
  check(await page.evaluate(() => window.__sameDocument === true),
    'a file uploaded by the CLI appears in the open page without a reload');

  const got = await download(`${row('alpha.bin')} [data-testid=download]`);
  check(got.equals(files.alpha), 'downloaded alpha.bin is byte-identical');

  // The user menu shows the storage used (and the quota, if there is one).
  await page.waitForSelector('[data-testid=quota]');
  const quota = (await page.textContent('[data-testid=quota]')).trim();
  check(await page.isVisible('[data-testid=quota]') && quota.includes('used'), `the storage used is on screen ("${quota}")`);

  // Share alpha.bin for 7 days without a password: the link downloads the
  // exact bytes with no credentials at all, until it is revoked.
  await page.click(`${row('alpha.bin')} [data-testid=share]`);
  const dialog = '[data-testid=share-dialog][data-name="alpha.bin"]';
  await page.waitForSelector(dialog);
  await page.selectOption(`${dialog} [data-testid=share-expiry]`, '7');
  check(await page.inputValue(`${dialog} [data-testid=share-password]`) === '', 'the share dialog starts without a password');
  await page.click(`${dialog} [data-testid=share-create]`);
  await page.waitForSelector(`${dialog} [data-testid=share-url]`);
  const shareUrl = await page.inputValue(`${dialog} [data-testid=share-url]`);
  check(shareUrl.startsWith(`${new URL(base).origin}/s/`), `the share link is a full URL on this server (${shareUrl})`);
  await page.screenshot({ path: path.join(shots, 'share-dialog.png') });
  await page.click(`${dialog} [data-testid=copy]`);
  await page.waitForSelector(`${dialog} [data-testid=copy-status]:is([data-state=copied], [data-state=failed])`);
  const copyNote = (await page.textContent(`${dialog} [data-testid=copy-status]`)).trim();
  check(await page.getAttribute(`${dialog} [data-testid=copy-status]`, 'data-state') === 'copied',
    `Copy puts the link on the clipboard ("${copyNote}")`);
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip === shareUrl, 'the clipboard holds the share link');
  const shared = await page.request.get(shareUrl);
  check(shared.status() === 200, `the share link answers without credentials (${shared.status()})`);
  check((await shared.body()).equals(files.alpha), 'the share link serves alpha.bin byte-identical');
  await page.click(`${dialog} [data-testid=share-done]`);
  await page.waitForSelector(dialog, { state: 'detached' });

  // The shared-links list shows the link; revoking it ends it at once.
  await page.click('[data-testid=shares-toggle]');
  const shareRow = `[data-testid=shares-panel] [data-testid=share-row][data-url="${shareUrl}"]`;
  await page.waitForSelector(`${shareRow}[data-state=live]`);
  const rowText = await page.textContent(shareRow);
  check(rowText.includes('alpha.bin'), `the shared-links list shows the live link to alpha.bin ("${rowText.trim()}")`);
  await page.screenshot({ path: path.join(shots, 'shared-links.png') });
  await page.click(`${shareRow} [data-testid=revoke]`);
  await page.waitForSelector(`${shareRow}[data-state=revoked]`);
  check(!(await page.$(`${shareRow} [data-testid=revoke]`)), 'a revoked link is listed as revoked, with no Revoke button');
  const gone = await page.request.get(shareUrl);
  check(gone.status() === 410, `a revoked share link answers 410 Gone (${gone.status()})`);
  await page.click('[data-testid=shares-toggle]');
  await page.waitForSelector('[data-testid=shares-panel]', { state: 'detached' });

  // A changed version, then restore version 1 from the history view.
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'beta.txt', mimeType: 'text/plain', buffer: files.beta2 });
  await page.waitForSelector(`${row('beta.txt')}[data-version="2"]`);
  check(true, 'beta.txt is at version 2');
  await page.click(`${row('beta.txt')} [data-testid=history]`);
  await page.waitForSelector('[data-testid=history-panel] [data-testid=version-row][data-version="2"]');
  await page.screenshot({ path: path.join(shots, 'history.png') });
  await page.click('[data-testid=version-row][data-version="1"] [data-testid=restore]');
  await page.waitForSelector(`${row('beta.txt')}[data-version="3"]`);
  const restored = await download(`${row('beta.txt')} [data-testid=download]`);
  check(restored.equals(files.beta1), 'version 3 of beta.txt has version 1\'s bytes');

  // Delete, then undo.
  await page.click(`${row('gamma.dat')} [data-testid=delete]`);
  await page.waitForSelector(row('gamma.dat'), { state: 'detached' });
  await page.waitForSelector('[data-testid=undo-bar]');
  await page.screenshot({ path: path.join(shots, 'deleted.png') });
  check(true, 'gamma.dat is gone from the listing');
  await page.click('[data-testid=undo]');
  await page.waitForSelector(`${row('gamma.dat')}[data-version="2"]`);
  check(true, 'undo brought gamma.dat back as version 2');

  // Folders: make one, move a file into it (a name with a folder in it),
  // rename the folder, look inside, delete it with everything in it.
  const folderRow = (name) => `[data-testid=folder-row][data-name="${name}"]`;
  page.once('dialog', (d) => d.accept('Trips'));
  await page.click('[data-testid=new-folder]');
  await page.waitForSelector(folderRow('Trips'));
  check(true, 'New folder makes an empty folder, listed at once');
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'postcard.txt', mimeType: 'text/plain', buffer: Buffer.from('wish you were here') });
  await uploaded('postcard.txt');
  await page.waitForSelector(row('postcard.txt'));
  page.once('dialog', (d) => d.accept('Trips/postcard.txt'));
  await page.click(`${row('postcard.txt')} [data-testid=rename]`);
  await page.waitForSelector(row('postcard.txt'), { state: 'detached' });
  page.once('dialog', (d) => d.accept('Journeys'));
  await page.click(`${folderRow('Trips')} [data-testid=rename-folder]`);
  await page.waitForSelector(folderRow('Journeys'));
  check(!(await page.$(folderRow('Trips'))), 'a renamed folder is listed under its new name only');
  await page.click(`${folderRow('Journeys')} >> text=Journeys/`);
  await page.waitForSelector(row('Journeys/postcard.txt'));
  check(true, 'the moved file is inside the renamed folder');
  await page.screenshot({ path: path.join(shots, 'folder.png') });
  await page.click('.crumbs >> text=All files');
  await page.waitForSelector(folderRow('Journeys'));
  page.once('dialog', (d) => d.accept());
  await page.click(`${folderRow('Journeys')} [data-testid=delete-folder]`);
  await page.waitForSelector(folderRow('Journeys'), { state: 'detached' });
  const note = (await page.textContent('[data-testid=notice]')).trim();
  check(note.includes('Journeys') && note.includes('restorable'), `deleting a folder says what became of its files ("${note}")`);

  // Keyboard only: Tab reaches the file picker and Space opens it. A
  // live refresh of the listing can take the focus between the two (seen
  // once in CI), so Tab is pressed again if the picker did not open.
  let chooser = null;
  for (let attempt = 0; attempt < 3 && !chooser; attempt++) {
    // From the top of the page (a click on its margin), not from where
    // the last action left the focus.
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.dataset?.testid === 'file-input');
    }
    check(reached, 'Tab reaches the file picker');
    [chooser] = await Promise.all([
      page.waitForEvent('filechooser', { timeout: 10000 }).catch(() => null),
      page.keyboard.press('Space'),
    ]);
  }
  check(chooser !== null, 'Space on the file picker opens it');
  await chooser.setFiles({ name: 'delta.bin', mimeType: 'application/octet-stream', buffer: files.delta });
  await uploaded('delta.bin');
  await page.waitForSelector(row('delta.bin'));
  check(true, 'a file picked with the keyboard alone uploads');

  // Cancel: PutChunk is held back, so the upload waits in "uploading";
  // Cancel ends it and no version is committed.
  await page.route('**/FileStorage/PutChunk', () => {});
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'held.bin', mimeType: 'application/octet-stream', buffer: files.held });
  const held = '[data-testid=upload-item][data-name="held.bin"]';
  await page.waitForSelector(`${held}[data-stage="uploading"]`);
  await page.click(`${held} button:has-text("Cancel")`);
  await page.waitForSelector(`${held}[data-stage="cancelled"]`);
  await page.unroute('**/FileStorage/PutChunk');
  check(!(await page.$(row('held.bin'))), 'a cancelled upload is not listed');

  // Server unreachable: every call fails at the network and the page says
  // so in its error banner.
  await page.route('**/FileStorage/**', (r) => r.abort('connectionrefused'));
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'offline.bin', mimeType: 'application/octet-stream', buffer: files.delta });
  await page.waitForSelector('[data-testid=error-banner]', { timeout: 30000 });
  const banner = (await page.textContent('[data-testid=error-banner]')).trim();
  check(banner.includes('offline.bin') && banner.includes('cannot reach the server'),
    `the error banner explains the failure: "${banner}"`);
  await page.screenshot({ path: path.join(shots, 'error-banner.png') });
  await page.unroute('**/FileStorage/**');

  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // A download link works until the user signs out, then never again.
  const again = await download(`${row('alpha.bin')} [data-testid=download]`);
  check(again.equals(files.alpha), 'alpha.bin downloads again');
  check(lastDownloadUrl && lastDownloadUrl.includes('ticket='), `downloads use a short-lived link (${lastDownloadUrl})`);
  check(!lastDownloadUrl.includes(process.env.COFFER_TOKEN), 'the access token is not in the link');
  const before = await fetch(lastDownloadUrl);
  check(before.status === 200, `the link works while signed in (${before.status})`);
  await page.click('[data-testid=logout]');
  await page.waitForSelector('[data-testid=login-form]');
  check(!(await page.$('[data-testid=dropzone]')), 'signing out hides the files');
  const after = await fetch(lastDownloadUrl);
  check(after.status === 401, `the download link is dead after signing out (${after.status})`);
  await page.reload();
  await page.waitForSelector('[data-testid=login-form]');
  check(true, 'after signing out a reload asks for a login again');
} catch (e) {
  await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(String(e));
  await browser.close();
  process.exit(1);
}
await browser.close();

// ---- an independent grpc-web client: hand-framed protobuf over fetch ----
function varint(n) {
  const out = [];
  while (n > 127) { out.push((n & 127) | 128); n = Math.floor(n / 128); }
  out.push(n);
  return Buffer.from(out);
}
function field(num, bytes) { return Buffer.concat([varint((num << 3) | 2), varint(bytes.length), bytes]); }
function frame(msg) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}
async function grpcWeb(method, msg) {
  const res = await fetch(`${base}/FileStorage/${method}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', accept: 'application/grpc-web+proto',
      authorization: `Bearer ${process.env.COFFER_TOKEN}`,
    },
    body: frame(msg),
  });
  check(res.status === 200, `grpc-web ${method} answers HTTP 200`);
  const buf = Buffer.from(await res.arrayBuffer());
  const messages = [];
  let trailers = '';
  for (let i = 0; i < buf.length;) {
    const flag = buf[i];
    const len = buf.readUInt32BE(i + 1);
    const body = buf.subarray(i + 5, i + 5 + len);
    if (flag & 0x80) trailers += body.toString(); else messages.push(body);
    i += 5 + len;
  }
  const status = (res.headers.get('grpc-status') ?? /grpc-status:\s*(\d+)/i.exec(trailers)?.[1]);
  check(String(status) === '0', `grpc-web ${method} status OK (${trailers.trim()})`);
  return messages;
}
function fields(msg) {
  const out = {};
  for (let i = 0; i < msg.length;) {
    let key = 0, shift = 0, b;
    do { b = msg[i++]; key += (b & 127) * 2 ** shift; shift += 7; } while (b & 128);
    const [num, type] = [Math.floor(key / 8), key & 7];
    if (type === 2) {
      let len = 0; shift = 0;
      do { b = msg[i++]; len += (b & 127) * 2 ** shift; shift += 7; } while (b & 128);
      (out[num] ??= []).push(msg.subarray(i, i + len));
      i += len;
    } else if (type === 0) {
      do { b = msg[i++]; } while (b & 128);
    } else {
      throw new Error(`unexpected wire type ${type}`);
    }
  }
  return out;
}
const [meta] = await grpcWeb('GetMetadata', field(1, Buffer.from('alpha.bin')));
const m = fields(meta);
check(m[1][0].toString() === 'alpha.bin' && m[3][0].toString() === '1', 'hand-framed GetMetadata: alpha.bin version 1');
const parts = await grpcWeb('DownloadFile', field(1, Buffer.from('alpha.bin')));
const whole = Buffer.concat(parts.map((p) => Buffer.concat(fields(p)[1] ?? [])));
check(whole.equals(files.alpha), 'hand-framed DownloadFile returns alpha.bin byte-identical');
console.log('browser tests passed');
