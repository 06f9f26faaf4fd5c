// The headless-browser harness of the test suite: Debian's Chromium (never a downloaded build)
// driven by playwright-core, confined to the loopback interface.
//
//   import { launch } from '../browser/launcher.mjs';
//   const browser = await launch();
//   const page = await browser.page({ fulfil: { 'https://client.example.org/': 'callback' } });
//   await page.goto('http://127.0.0.1:4000/...');
//   await browser.close();
//
//   const { page, messages, close } = await openPage('http://127.0.0.1:8080/');  // one page
//
// Every launch gets a fresh profile directory (removed on close), the flags that keep Chromium
// from phoning home, and a dead proxy for every host but the loopback ones. Requests to other
// origins never leave the machine: the ones named in `fulfil` get a small page, all others are
// aborted. A redirect to another origin (a client's callback) is best caught with
// `waitForCallback`, which sees the request whether or not it is routed.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Anything not on the loopback goes to a proxy that is not there: no DNS lookup, no packet
  // leaves the machine, even for a redirect the routes below do not see. (Loopback addresses are
  // never proxied.)
  '--proxy-server=http://127.0.0.1:9',
];

function isLoopback(url) {
  const { hostname } = new URL(url);
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
}

/**
 * Launches Chromium. `page({ fulfil })` opens a page in a fresh context: `fulfil` maps URL
 * prefixes outside the loopback to the text to answer them with.
 *
 * `route: false` leaves requests unintercepted (the dead proxy still keeps them on the machine):
 * while playwright routes requests it answers CORS preflights itself, so a test of the server's
 * own preflight answers must not route.
 */
export async function launch({ route = true } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'tower-par-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  const outside = [];
  if (route) {
    await context.route('**/*', async (intercepted) => {
      const url = intercepted.request().url();
      if (url.startsWith('data:') || isLoopback(url)) return intercepted.continue();
      const prefix = Object.keys(context.fulfil ?? {}).find((p) => url.startsWith(p));
      if (prefix !== undefined) {
        return intercepted.fulfill({ status: 200, contentType: 'text/html', body: context.fulfil[prefix] });
      }
      outside.push(url);
      return intercepted.abort('blockedbyclient');
    });
  }
  return {
    /** Requests the harness refused to let out (fonts, say). */
    outside,
    async page({ fulfil = {} } = {}) {
      context.fulfil = fulfil;
      return context.newPage();
    },
    /**
     * Runs `action` (a click, a reload) and resolves with the URL of the first request `page`
     * makes to a URL starting with `prefix`. The navigation there may fail at the dead proxy (a
     * redirect to another origin is not routed): that is expected, the URL is what counts.
     */
    async waitForCallback(page, prefix, action) {
      const seen = page.waitForRequest((r) => r.url().startsWith(prefix));
      await action().catch((err) => {
        if (!/ERR_PROXY_CONNECTION_FAILED|ERR_ABORTED|ERR_BLOCKED_BY_CLIENT/.test(err.message)) throw err;
      });
      return new URL((await seen).url());
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a fresh browser (unrouted, see `launch`) and loads `url` in a new page; `messages` collects the page's console
 * output and errors (`type: text`), where Chromium reports CORS refusals. `close()` ends the
 * browser and removes its profile.
 *
 * @param {string} url
 * @param {{ timeoutMs?: number }} [options] the navigation timeout (default 15 s)
 */
export async function openPage(url, { timeoutMs = 15_000 } = {}) {
  // Unrouted: the pages this opens test the server's CORS answers, preflights included.
  const browser = await launch({ route: false });
  try {
    const page = await browser.page();
    const messages = [];
    page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (err) => messages.push(`pageerror: ${err.message}`));
    // 'commit': the page may navigate on by itself (an SPA sends the browser to the
    // authorization endpoint) before its own load event.
    await page.goto(url, { timeout: timeoutMs, waitUntil: 'commit' });
    return { page, messages, close: () => browser.close() };
  } catch (err) {
    await browser.close();
    throw err;
  }
}
