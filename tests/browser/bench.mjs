// Times a browser upload through Coffer's web app: from picking the file
// to its version being committed. Environment: COFFER_URL, UPLOAD_FILE,
// CHROMIUM. Prints one JSON line: {"seconds": …, "bytes": …}.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const file = process.env.UPLOAD_FILE;
const name = path.basename(file);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
await page.goto(process.env.COFFER_URL);
await page.waitForSelector('[data-testid=file-input]', { state: 'attached' });
const start = Date.now();
await page.setInputFiles('[data-testid=file-input]', file);
await page.waitForSelector(`[data-testid=upload-item][data-name="${name}"][data-stage="done"]`, { timeout: 1800000 });
const seconds = (Date.now() - start) / 1000;
await browser.close();
console.log(JSON.stringify({ seconds, bytes: fs.statSync(file).size }));
