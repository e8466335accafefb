// The web app's file features in real headless Chromium: previews of each
// kind, user content that cannot act with the app's session, comparing
// versions, selection (mouse and keys) with zip, move and delete, search,
// shortcuts, dark mode, and an axe-core audit of every page shown.
//
// Environment: COFFER_URL, COFFER_USER, COFFER_PASSWORD, COFFER_TOKEN,
// COFFER_CLI (uploads the tree), WORK_DIR (the zips are saved here for the
// calling test to check), SCREENSHOT_DIR, CHROMIUM. Exits non-zero on the
// first failed check.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const base = process.env.COFFER_URL;
const work = process.env.WORK_DIR;
const shots = process.env.SCREENSHOT_DIR;
fs.mkdirSync(shots, { recursive: true });
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// ---- files made here: real PNGs and a real WAV ----
function png(width, height, pixel) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const head = Buffer.alloc(13);
  head.writeUInt32BE(width, 0); head.writeUInt32BE(height, 4);
  head[8] = 8; head[9] = 2; // 8-bit RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x / width, y / height);
      raw.set([r, g, b], y * (width * 3 + 1) + 1 + x * 3);
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', head),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
function wav(seconds, hz) {
  const rate = 8000; const n = rate * seconds;
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * hz * i / rate)), 44 + i * 2);
  return b;
}
const tree = path.join(work, 'tree');
const put = (name, bytes) => {
  fs.mkdirSync(path.dirname(path.join(tree, name)), { recursive: true });
  fs.writeFileSync(path.join(tree, name), bytes);
};
put('Trip/photos/sunset.png', png(640, 400, (x, y) => [255, Math.round(120 + 100 * y), Math.round(80 * x)]));
put('Trip/photos/sky.png', png(400, 640, (x, y) => [Math.round(60 * x), Math.round(140 + 80 * y), 255]));
put('Trip/notes.md', '# Day one\n\nWe walked **far**. [home](https://example.com) '
  + '[bad](javascript:localStorage.setItem(\'pwned\',\'md\'))\n\n<script>localStorage.setItem(\'pwned\', \'md\')</script>\n'
  + '<img src=x onerror="localStorage.setItem(\'pwned\',\'md\')">\n\n- sea\n- sand\n');
put('Trip/story.txt', 'Once upon a time\nthere was a cat.\nIt slept.\nThe end.\n');
put('Trip/tone.wav', wav(1, 440));
put('<img src=x onerror=alert(1)> & <b>bold.txt', 'a name with markup in it');
put('code.rs', 'fn main() {\n    println!("hello <b>world</b>");\n}\n');
put('evil.html', '<!doctype html><title>evil</title><script>localStorage.setItem("pwned", "html");'
  + 'sessionStorage.setItem("pwned", "html"); document.cookie = "pwned=html; path=/"; '
  + 'document.title = "ran"</script><p>nothing to see</p>');
put('evil.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><script>'
  + 'localStorage.setItem("pwned", "svg"); document.cookie = "pwned=svg; path=/"</script>'
  + '<circle cx="50" cy="50" r="40" fill="teal"/></svg>');
put('doc.pdf', '%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj '
  + '3 0 obj<</Type/Page/MediaBox[0 0 200 200]/Parent 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
const cli = (args) => execFileSync(process.env.COFFER_CLI, ['--server', base, '--quiet', ...args], {
  env: { ...process.env, COFFER_TOKEN: process.env.COFFER_TOKEN, COFFER_STATE_DIR: path.join(work, 'cli-state') },
});
cli(['put', tree, '/']);
cli(['mkdir', 'Trip/empty']);
const story2 = path.join(work, 'story2.txt');
fs.writeFileSync(story2, 'Once upon a time\nthere was a dog.\nIt slept.\nIt woke.\nThe end.\n');
cli(['put', story2, 'Trip/story.txt']);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.on('pageerror', (e) => console.log(`[page error] ${e}`));
const row = (name) => `[data-testid=file-row][data-name="${name}"]`;
const folderRow = (name) => `[data-testid=folder-row][data-name="${name}"]`;

// axe-core on what is on screen: no serious or critical violation.
async function audit(what) {
  // Evaluated through DevTools: the app's own policy refuses inline script.
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result) console.log(`  axe (${what}): ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`);
  check(bad.length === 0, `axe-core finds no serious or critical violation: ${what}`);
}
async function save(selector, file) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const to = path.join(work, file);
  await dl.saveAs(to);
  return { to, name: dl.suggestedFilename() };
}
const pwned = () => page.evaluate(() => ({
  local: localStorage.getItem('pwned'), session: sessionStorage.getItem('pwned'), cookie: document.cookie,
}));

try {
  await page.goto(base);
  await page.waitForSelector('[data-testid=login-form]');
  await audit('sign-in page');
  await page.fill('[data-testid=login-user]', process.env.COFFER_USER);
  await page.fill('[data-testid=login-password]', process.env.COFFER_PASSWORD);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector(folderRow('Trip'));
  await audit('file list');

  // ---- previews ----
  await page.click(`${folderRow('Trip')} >> text=Trip/`);
  await page.click(`${folderRow('photos')} >> text=photos/`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.naturalHeight === 256,
    `${row('Trip/photos/sky.png')} [data-testid=thumbnail]`);
  const thumbWidth = await page.$eval(`${row('Trip/photos/sky.png')} [data-testid=thumbnail]`, (i) => i.naturalWidth);
  check(thumbWidth === 160, `each photo's row shows the server's 256-pixel thumbnail (400x640 -> ${thumbWidth}x256)`);
  await page.screenshot({ path: path.join(shots, 'thumbnails.png') });
  await page.click(`${row('Trip/photos/sky.png')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer][data-kind=image] img');
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-image]')?.naturalWidth === 400);
  check(true, 'a PNG opens in the viewer, decoded at full size (400 px wide)');
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-image]')?.naturalWidth === 640);
  check(await page.getAttribute('[data-testid=viewer]', 'data-name') === 'Trip/photos/sunset.png',
    'the right arrow steps to the next photo');
  await page.screenshot({ path: path.join(shots, 'viewer-image.png') });
  await audit('image viewer');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=viewer]', { state: 'detached' });

  await page.click('.crumbs >> text=Trip');
  await page.click(`${row('Trip/notes.md')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer-markdown] h1');
  const md = await page.evaluate(() => {
    const a = document.querySelector('[data-testid=viewer-markdown]');
    return { h1: a.querySelector('h1').textContent, strong: !!a.querySelector('strong'),
      scripts: a.querySelectorAll('script, img, iframe').length, text: a.textContent,
      hrefs: [...a.querySelectorAll('a')].map((l) => l.getAttribute('href')) };
  });
  check(md.h1 === 'Day one' && md.strong, 'Markdown is rendered (a heading, bold text)');
  check(md.scripts === 0 && md.text.includes('<script>'), 'raw HTML in Markdown is shown as text, never as elements');
  check(md.hrefs.includes('https://example.com') && !md.hrefs.some((h) => h.startsWith('javascript')),
    `a javascript: link in Markdown goes nowhere (${md.hrefs})`);
  await page.screenshot({ path: path.join(shots, 'viewer-markdown.png') });
  await page.keyboard.press('Escape');

  await page.click(`${row('Trip/tone.wav')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer-audio]');
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-audio]').readyState >= 1, null, { timeout: 15000 });
  const duration = await page.evaluate(() => document.querySelector('[data-testid=viewer-audio]').duration);
  check(Math.abs(duration - 1) < 0.05, `audio plays from its /view/ link (duration ${duration} s)`);
  await page.keyboard.press('Escape');

  // ---- versions compared ----
  await page.click(`${row('Trip/story.txt')} [data-testid=history]`);
  await page.waitForSelector('[data-testid=version-row][data-version="2"]');
  await page.check('[data-testid=version-row][data-version="1"] [data-testid=compare-pick]');
  await page.check('[data-testid=version-row][data-version="2"] [data-testid=compare-pick]');
  await page.click('[data-testid=compare]');
  await page.waitForSelector('[data-testid=diff-hunk]');
  const diff = await page.evaluate(() => [...document.querySelectorAll('[data-testid=diff-hunk] tr')]
    .map((r) => `${r.dataset.sign}${r.querySelector('.code').textContent.replace(/^(removed|added): /, '')}`));
  check(diff.includes('-there was a cat.') && diff.includes('+there was a dog.') && diff.includes('+It woke.')
    && diff.includes(' Once upon a time'), `the diff shows the changed lines with context (${JSON.stringify(diff)})`);
  await page.screenshot({ path: path.join(shots, 'diff.png') });
  await audit('version comparison');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=diff]', { state: 'detached' });

  // ---- selection: clicks and keys; zip of a selection ----
  await page.click(`${row('Trip/story.txt')} td.num >> nth=0`);
  check(await page.textContent('[data-testid=selection-count]') === '1 selected', 'a click on a row selects it');
  await page.click(`${row('Trip/tone.wav')} td.num >> nth=0`, { modifiers: ['Control'] });
  check(await page.textContent('[data-testid=selection-count]') === '2 selected', 'ctrl-click adds a row');
  await page.click(`${folderRow('photos')} td.wide`, { modifiers: ['Shift'] });
  const ranged = await page.textContent('[data-testid=selection-count]');
  check(ranged === '4 selected', `shift-click selects the range from the last click (${ranged})`);
  await page.screenshot({ path: path.join(shots, 'selection.png') });
  await audit('selection');
  const chosenZip = await save('[data-testid=zip-selection]', 'selection.zip');
  check(chosenZip.name === 'Trip.zip', `the selection downloads as one zip named after its folder (${chosenZip.name})`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=selection-bar]', { state: 'detached' });
  // Keys alone: down to a row, Space selects it, Ctrl+A everything.
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('j');
  await page.keyboard.press('j');
  await page.keyboard.press('Space');
  check(await page.textContent('[data-testid=selection-count]') === '1 selected', 'j moves between rows and Space selects');
  await page.keyboard.press('Control+a');
  const all = await page.locator('tr[data-row]').count();
  check(await page.textContent('[data-testid=selection-count]') === `${all} selected`, `Ctrl+A selects all ${all} rows`);
  await page.keyboard.press('Escape');

  // A folder's own Download is a zip of the whole tree.
  await page.click('.crumbs >> text=All files');
  await page.waitForSelector(folderRow('Trip'));
  const tripZip = await save(`${folderRow('Trip')} [data-testid=zip-folder]`, 'Trip.zip');
  check(tripZip.name === 'Trip.zip', 'a folder downloads as a zip named after it');

  // Move and delete a selection.
  await page.click(`${row('code.rs')} td.num >> nth=0`);
  await page.click(`${row('doc.pdf')} td.num >> nth=0`, { modifiers: ['Control'] });
  page.once('dialog', (d) => d.accept('Trip'));
  await page.click('[data-testid=move-selection]');
  await page.waitForSelector(row('code.rs'), { state: 'detached' });
  await page.click(`${folderRow('Trip')} >> text=Trip/`);
  await page.waitForSelector(row('Trip/code.rs'));
  await page.waitForSelector(row('Trip/doc.pdf'));
  check(true, 'Move… puts the selection into the folder typed');

  // PDF and source code in the viewer.
  await page.click(`${row('Trip/code.rs')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer-text]');
  check((await page.textContent('[data-testid=viewer-text]')).includes('println!("hello <b>world</b>")'),
    'source code is shown as text, markup and all');
  await page.keyboard.press('Escape');
  await page.click(`${row('Trip/doc.pdf')} [data-testid=open]`);
  const pdfSrc = await page.getAttribute('[data-testid=viewer-pdf]', 'src');
  const pdf = await page.request.get(new URL(pdfSrc, base).href);
  check(pdf.status() === 200 && pdf.headers()['content-type'] === 'application/pdf',
    `a PDF is framed from its /view/ link, served as application/pdf (${pdf.headers()['content-type']})`);
  await page.keyboard.press('Escape');

  await page.click(`${row('Trip/code.rs')} td.num >> nth=0`);
  await page.click(`${row('Trip/doc.pdf')} td.num >> nth=0`, { modifiers: ['Control'] });
  page.once('dialog', (d) => d.accept());
  await page.click('[data-testid=delete-selection]');
  await page.waitForSelector(row('Trip/code.rs'), { state: 'detached' });
  await page.waitForSelector(row('Trip/doc.pdf'), { state: 'detached' });
  check(true, 'Delete removes the whole selection');

  // ---- drag and drop within the browser: onto a folder, onto a crumb ----
  await page.dragAndDrop(row('Trip/tone.wav'), folderRow('empty'));
  await page.waitForSelector(row('Trip/tone.wav'), { state: 'detached' });
  await page.click(`${folderRow('empty')} >> text=empty/`);
  await page.waitForSelector(row('Trip/empty/tone.wav'));
  check(true, 'a row dragged onto a folder moves into it');
  await page.dragAndDrop(row('Trip/empty/tone.wav'), '[data-testid=crumb][data-folder="Trip/"]');
  await page.waitForSelector(row('Trip/empty/tone.wav'), { state: 'detached' });
  await page.click('.crumbs >> text=Trip');
  await page.waitForSelector(row('Trip/tone.wav'));
  check(true, 'and dragged onto a breadcrumb moves back up');

  // The share dialog passes the audit too.
  await page.click(`${row('Trip/notes.md')} [data-testid=share]`);
  await page.waitForSelector('[data-testid=share-dialog]');
  await audit('share dialog');
  await page.click('[data-testid=share-close]');
  await page.click('[data-testid=shares-toggle]');
  await page.waitForSelector('[data-testid=shares-panel]');
  await audit('shared links');
  await page.click('[data-testid=shares-toggle]');

  // ---- search ----
  await page.keyboard.press('/');
  check(await page.evaluate(() => document.activeElement?.dataset?.testid === 'search'), '/ puts the cursor in the search box');
  await page.keyboard.type('SUN');
  await page.waitForSelector(row('Trip/photos/sunset.png'));
  check(await page.locator('[data-testid=file-row]').count() === 1, 'search finds the one name holding "sun", ignoring case');
  check((await page.textContent('[data-testid=search-status]')).includes('1 file found'), 'search says how many it found');
  await page.screenshot({ path: path.join(shots, 'search.png') });
  await audit('search results');
  await page.fill('[data-testid=search]', '');
  await page.waitForSelector(folderRow('photos'));

  // ---- folders uploaded: picked, and several dropped at once ----
  // Into the folder shown (Trip), tree and all; a name the CLI would
  // refuse is skipped and said why.
  const album = path.join(work, 'pick', 'Album');
  fs.mkdirSync(path.join(album, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(album, 'a.txt'), 'a');
  fs.writeFileSync(path.join(album, 'sub', 'b.txt'), 'b');
  fs.writeFileSync(path.join(album, 'bad\u202ename.txt'), 'hidden direction mark');
  await page.setInputFiles('[data-testid=folder-input]', album);
  await page.waitForSelector('[data-testid=upload-totals][data-pending="0"][data-done="2"]');
  await page.waitForSelector('[data-testid=skipped]');
  const skippedText = await page.textContent('[data-testid=skipped]');
  check(skippedText.includes('1 skipped') && skippedText.includes('invisible'),
    `a refused name is skipped with its reason (${skippedText.trim().slice(0, 120)})`);
  await page.waitForSelector(folderRow('Album'));
  await page.click(`${folderRow('Album')} >> text=Album/`);
  await page.waitForSelector(row('Trip/Album/a.txt'));
  await page.waitForSelector(folderRow('sub'));
  check(true, 'a picked folder lands under the folder shown, sub-folders and all');
  await page.click('.crumbs >> text=Trip');
  await page.waitForSelector(folderRow('Album'));

  // Two folders in one drop, read the way browsers hand them over:
  // readEntries answers two at a time until an empty batch.
  const dropped = await page.evaluate(() => {
    const file = (fullPath, text) => ({ isFile: true, isDirectory: false, fullPath,
      name: fullPath.split('/').pop(), file: (ok) => setTimeout(() => ok(new File([text], fullPath.split('/').pop())), 0) });
    const dir = (fullPath, children) => ({ isFile: false, isDirectory: true, fullPath,
      name: fullPath.split('/').pop(), createReader() {
        let at = 0;
        return { readEntries(ok) { const b = children.slice(at, at + 2); at += 2; setTimeout(() => ok(b), 0); } };
      } });
    const many = [];
    for (let i = 0; i < 25; i++) many.push(file(`/Drop1/many/${String(i).padStart(2, '0')}.txt`, `file ${i}`));
    const d1 = dir('/Drop1', [file('/Drop1/x.txt', 'x'), dir('/Drop1/void', []), dir('/Drop1/many', many)]);
    const d2 = dir('/Drop2', [file('/Drop2/y.txt', 'y')]);
    const items = [d1, d2].map((e) => ({ webkitGetAsEntry: () => e }));
    const ev = new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: new DataTransfer() });
    Object.defineProperty(ev, 'dataTransfer', { value: { items, files: [] } });
    document.querySelector('[data-testid=dropzone]').dispatchEvent(ev);
    return 27;
  });
  await page.waitForSelector(`[data-testid=upload-totals][data-pending="0"][data-done="${2 + dropped}"]`, { timeout: 120000 });
  await page.waitForSelector(folderRow('Drop1'));
  await page.waitForSelector(folderRow('Drop2'));
  await page.click(`${folderRow('Drop1')} >> text=Drop1/`);
  await page.waitForSelector(folderRow('void'));
  await page.waitForSelector(folderRow('many'));
  await page.waitForSelector(row('Trip/Drop1/x.txt'));
  check(true, 'both dropped folders land under the folder shown, the empty one included');
  await page.click(`${folderRow('many')} >> text=many/`);
  await page.waitForSelector(row('Trip/Drop1/many/24.txt'));
  check(await page.locator('[data-testid=file-row]').count() === 25, 'every file of a folder read in batches arrives');
  await page.screenshot({ path: path.join(shots, 'upload-panel.png') });
  await audit('upload panel');
  await page.click('.crumbs >> text=Trip');
  await page.waitForSelector(folderRow('photos'));

  // Cancel all, then Retry failed: PutChunk is held back, so both files
  // wait in "uploading" until cancelled; retried, both arrive.
  await page.route('**/FileStorage/PutChunk', () => {});
  await page.setInputFiles('[data-testid=file-input]', [
    { name: 'r1.bin', mimeType: 'application/octet-stream', buffer: crypto.randomBytes(300 * 1024) },
    { name: 'r2.bin', mimeType: 'application/octet-stream', buffer: crypto.randomBytes(300 * 1024) },
  ]);
  const item = (n) => `[data-testid=upload-item][data-name="Trip/${n}"]`;
  await page.waitForSelector(`${item('r1.bin')}[data-stage="uploading"]`);
  await page.click('[data-testid=cancel-all]');
  await page.waitForSelector(`${item('r1.bin')}[data-stage="cancelled"]`);
  await page.waitForSelector(`${item('r2.bin')}[data-stage="cancelled"]`);
  await page.unroute('**/FileStorage/PutChunk');
  check(!(await page.$(row('Trip/r1.bin'))), 'Cancel all stops every upload, and nothing is committed');
  await page.click('[data-testid=retry-failed]');
  await page.waitForSelector(`${item('r1.bin')}[data-stage="done"]`);
  await page.waitForSelector(`${item('r2.bin')}[data-stage="done"]`);
  await page.waitForSelector(row('Trip/r2.bin'));
  check(true, 'Retry failed sends them again, and both arrive');

  // ---- shortcuts, dark mode, phone ----
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('?');
  await page.waitForSelector('[data-testid=shortcuts]');
  check((await page.textContent('[data-testid=shortcuts]')).includes('Select everything listed'), '? lists the shortcuts');
  await audit('shortcuts');
  await page.keyboard.press('Escape');
  await page.emulateMedia({ colorScheme: 'dark' });
  const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  check(bg === 'rgb(19, 22, 28)', `dark mode follows the system setting (${bg})`);
  await page.screenshot({ path: path.join(shots, 'dark.png') });
  await audit('dark mode');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: path.join(shots, 'phone-folder.png'), fullPage: true });
  await audit('phone width');
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---- the operator view (the signed-in user is an admin) ----
  await page.click('[data-testid=operator-toggle]');
  await page.waitForSelector('[data-testid=op-nodes] tr[data-node]');
  const nodes = await page.$$eval('[data-testid=op-nodes] tr[data-node]', (rs) => rs.map((r) => r.textContent));
  check(nodes.length === 3 && nodes.every((t) => t.includes('up')), `the operator view shows each node up (${nodes.length})`);
  const workers = await page.$$eval('[data-testid=op-workers] tr[data-worker]', (rs) => rs.map((r) => r.dataset.worker));
  check(['repair', 'scrub', 'gc'].every((w) => workers.includes(w)), `and every worker's last run (${workers})`);
  check(await page.locator('[data-testid=op-accounts] tr[data-account="admin"] .bar').count() === 1,
    "and each account's use as a bar");
  check((await page.textContent('[data-testid=op-replication]')).includes('0 short of copies'), 'and the replication debt');
  // A second sample draws the series.
  await page.waitForFunction(() => document.querySelector('[data-testid=operator] svg.spark polyline')
    ?.getAttribute('points').split(' ').length >= 2, null, { timeout: 15000 });
  await page.screenshot({ path: path.join(shots, 'operator.png'), fullPage: true });
  await audit('operator view');
  await page.click('[data-testid=operator-toggle]');

  // ---- user content never acts with the app's session ----
  await page.click('.crumbs >> text=All files');
  const marked = '<img src=x onerror=alert(1)> & <b>bold.txt';
  await page.waitForSelector(`[data-testid=file-row][data-name="${marked.replaceAll('"', '\\"')}"]`);
  const shown = await page.evaluate((name) => {
    const r = [...document.querySelectorAll('[data-testid=file-row]')].find((e) => e.dataset.name === name);
    return { text: r.querySelector('[data-testid=open]').textContent, injected: r.querySelectorAll('img, b').length };
  }, marked);
  check(shown.text === marked && shown.injected === 0, `a name with markup is shown as text (${shown.text})`);
  await page.click(`${row('evil.html')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer-frame][sandbox=""]');
  await page.click(`[data-testid=viewer-next]`);
  await page.waitForSelector('[data-testid=viewer][data-name="evil.svg"] [data-testid=viewer-frame][sandbox=""]');
  await page.waitForTimeout(500);
  await page.keyboard.press('Escape');
  // Opened directly, as a link in a new tab would be: the server's own
  // sandbox keeps its script from running on this origin.
  for (const name of ['evil.html', 'evil.svg']) {
    await page.click(`${row(name)} [data-testid=open]`);
    const src = await page.getAttribute('[data-testid=viewer-frame]', 'src');
    await page.keyboard.press('Escape');
    const tab = await context.newPage();
    const res = await tab.goto(new URL(src, base).href);
    await tab.waitForTimeout(300);
    const ran = await context.pages()[0].evaluate(() => localStorage.getItem('pwned'));
    check(await tab.title() !== 'ran' && ran === null, `${name}'s script did not run when opened directly`);
    check(res.headers()['content-security-policy']?.startsWith('sandbox;'), `${name} is served with a sandbox policy`);
    await tab.close();
  }
  const after = await pwned();
  check(after.local === null && after.session === null && !after.cookie.includes('pwned'),
    `no script in a user's file reached the app's storage or cookies (${JSON.stringify(after)})`);

  // ---- a real video: recorded here from a canvas (VP8 in WebM), sent
  // through the upload panel, then played from its /view/ link by Range.
  const clip = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 160; canvas.height = 120;
    const g = canvas.getContext('2d');
    const rec = new MediaRecorder(canvas.captureStream(25), { mimeType: 'video/webm;codecs=vp8' });
    const parts = [];
    rec.ondataavailable = (e) => parts.push(e.data);
    const stopped = new Promise((ok) => { rec.onstop = ok; });
    let frame = 0;
    const paint = setInterval(() => { g.fillStyle = `hsl(${(frame++ * 30) % 360}, 80%, 50%)`; g.fillRect(0, 0, 160, 120); }, 40);
    rec.start(100);
    await new Promise((ok) => setTimeout(ok, 1200));
    rec.stop();
    await stopped;
    clearInterval(paint);
    const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
  });
  const views = [];
  page.on('response', (r) => {
    if (r.url().includes('/view/clip.webm')) views.push([r.status(), r.request().headers().range || '']);
  });
  await page.setInputFiles('[data-testid=file-input]',
    { name: 'clip.webm', mimeType: 'video/webm', buffer: Buffer.from(clip, 'base64') });
  await page.waitForSelector(`${row('clip.webm')} [data-testid=open]`);
  await page.click(`${row('clip.webm')} [data-testid=open]`);
  await page.waitForSelector('[data-testid=viewer-video]');
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-video]').readyState >= 2, null, { timeout: 15000 });
  const video = await page.evaluate(() => {
    const v = document.querySelector('[data-testid=viewer-video]');
    return { width: v.videoWidth, height: v.videoHeight };
  });
  check(video.width === 160 && video.height === 120,
    `a WebM video (${Buffer.from(clip, 'base64').length} bytes) plays in the viewer at 160x120 (${video.width}x${video.height})`);
  check(views.some(([status, range]) => status === 206 && range.startsWith('bytes=')),
    `the video is streamed by Range from its /view/ link (${JSON.stringify(views)})`);
  await page.screenshot({ path: path.join(shots, 'viewer-video.png') });
  await audit('video viewer');
  await page.keyboard.press('Escape');
} catch (e) {
  await page.screenshot({ path: path.join(shots, 'app-failure.png'), fullPage: true }).catch(() => {});
  console.error(String(e));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('app tests passed');
