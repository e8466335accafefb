// A folder of 100,000 files in the web app: it opens on its first page,
// only the rows on screen (and a margin) exist in the page, scrolling
// fetches the next pages until the last file, and the server sorts.
//
// Environment: COFFER_URL, COFFER_USER, COFFER_PASSWORD, SCREENSHOT_DIR,
// CHROMIUM, BIG_FOLDER (its name), BIG_COUNT (its files).
import { chromium } from 'playwright-core';
import path from 'node:path';

const base = process.env.COFFER_URL;
const shots = process.env.SCREENSHOT_DIR;
const folder = process.env.BIG_FOLDER;
const count = Number(process.env.BIG_COUNT);
const last = `${folder}/file${String(count - 1).padStart(6, '0')}.txt`;
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const rows = () => page.locator('tr[data-row]').count();
try {
  await page.goto(base);
  await page.fill('[data-testid=login-user]', process.env.COFFER_USER);
  await page.fill('[data-testid=login-password]', process.env.COFFER_PASSWORD);
  await page.click('[data-testid=login-submit]');
  await page.click(`[data-testid=folder-row][data-name="${folder}"] >> text=${folder}/`);
  await page.waitForSelector(`[data-testid=file-row][data-name="${folder}/file000000.txt"]`);
  const drawn = await rows();
  check(drawn > 10 && drawn < 200, `the folder opens with only the rows on screen drawn (${drawn})`);
  // Scroll to the end again and again: pages arrive as the window nears
  // the files fetched so far, until the last one.
  let seen = false;
  for (let i = 0; i < 2000 && !seen; i++) {
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.waitForTimeout(25);
    seen = (await page.locator(`[data-testid=file-row][data-name="${last}"]`).count()) === 1;
  }
  check(seen, `scrolling reaches the last of ${count} files`);
  const after = await rows();
  check(after < 200, `still only the rows on screen are drawn at the end (${after})`);
  const status = await page.textContent('[data-testid=listing-count]');
  check(status.includes(`${count.toLocaleString('en-US').replaceAll(',', '')} files`) || status.includes(`${count} files`),
    `every file is counted once (${status.trim()})`);
  await page.screenshot({ path: path.join(shots, 'big-folder.png') });
  // A 1 GiB text file in the viewer: its first MiB only, and a note.
  await page.click('.crumbs >> text=All files');
  const ranges = [];
  page.on('response', (r) => { if (r.url().includes('/view/huge.txt')) ranges.push([r.status(), r.headers()['content-length']]); });
  await page.click('[data-testid=file-row][data-name="huge.txt"] [data-testid=open]');
  await page.waitForSelector('[data-testid=viewer-text]');
  const shownText = await page.textContent('[data-testid=viewer]');
  check(shownText.includes('line 0000000 of a long text file') && shownText.includes('Showing the first 1 MiB'),
    'a 1 GiB text file opens in the viewer at its start, saying it shows the first MiB');
  check(ranges.length === 1 && ranges[0][0] === 206 && ranges[0][1] === String(1 << 20),
    `the viewer read one range of 1 MiB (${JSON.stringify(ranges)})`);
  await page.keyboard.press('Escape');
  await page.click(`[data-testid=folder-row][data-name="${folder}"] >> text=${folder}/`);
  await page.waitForSelector(`[data-testid=file-row][data-name="${folder}/file000000.txt"]`);
  // Sorted by the server: the name column's second click reverses.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.click('th >> text=Name');
  await page.waitForFunction((name) => document.querySelector('tr[data-testid=file-row]')?.dataset.name === name, last);
  check(true, 'the server sorts: names descending start at the last file');
} catch (e) {
  await page.screenshot({ path: path.join(shots, 'big-failure.png') }).catch(() => {});
  console.error(String(e));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('big folder passed');
