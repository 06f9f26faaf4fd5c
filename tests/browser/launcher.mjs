// Opens a URL in a real browser: the system's Chromium (Debian's `chromium`, which
// scripts/test installs), headless, driven by playwright-core. No browser is ever downloaded:
// playwright-core has no install step, and the executable is the system's.
//
//   const { page, messages, close } = await openPage('http://127.0.0.1:8080/');
//   ... drive `page` (a playwright Page) ...
//   await close();
//
// Every call starts its own browser with a fresh profile (a temporary --user-data-dir, removed
// by close()), so pages share no cookies, storage or cache. `messages` collects the page's
// console output ("type: text"), where Chromium reports CORS refusals.
//
// Environment: CHROMIUM_PATH overrides /usr/bin/chromium.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// Quiet and offline: no sandbox (tests run as root), no GPU, no QUIC, no first-run pages, no
// background traffic to Google's services.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Starts a fresh headless Chromium and loads `url` in a new page.
 *
 * @param {string} url
 * @param {{ timeoutMs?: number }} [options] the navigation timeout (default 15 s)
 * @returns {Promise<{ page: import('playwright-core').Page, messages: string[], close: () => Promise<void> }>}
 */
export async function openPage(url, { timeoutMs = 15_000 } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'tower-par-chromium-'));
  let context;
  try {
    // launchPersistentContext passes the profile as --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      timeout: timeoutMs,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw new Error(`cannot start ${CHROMIUM_PATH} (install Debian's chromium): ${err.message}`);
  }
  const close = async () => {
    await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  };
  try {
    const page = await context.newPage();
    const messages = [];
    page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (err) => messages.push(`pageerror: ${err.message}`));
    // 'commit': the page may navigate on by itself (an SPA sends the browser to the
    // authorization endpoint) before its own load event.
    await page.goto(url, { timeout: timeoutMs, waitUntil: 'commit' });
    return { page, messages, close };
  } catch (err) {
    await close();
    throw err;
  }
}
