// Driving node-oidc-provider's devInteractions login and consent forms with plain HTTP, as a
// browser would: a cookie jar, redirects followed by hand, forms read from the HTML and posted.

import assert from 'node:assert/strict';

/** A cookie jar good enough for one origin: name → value, `Max-Age=0` deletes. */
export class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a))
        || attributes.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([n, v]) => `${n}=${v}`).join('; ');
  }

  get size() {
    return this.#cookies.size;
  }
}

/** One request without following redirects, cookies sent and stored. */
export async function visit(jar, url, init = {}) {
  const headers = new Headers(init.headers ?? {});
  if (jar.size > 0) headers.set('cookie', jar.header());
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(response);
  return response;
}

/** The form of a devInteractions page: its action and its hidden `prompt`. */
function readForm(html, base) {
  const form = html.match(/<form[^>]*action="([^"]+)"[^>]*method="post"/);
  assert.ok(form, `a form on the page: ${html.slice(0, 300)}`);
  const prompt = html.match(/name="prompt" value="([^"]+)"/);
  assert.ok(prompt, 'a prompt field');
  return { action: new URL(form[1].replaceAll('&amp;', '&'), base), prompt: prompt[1] };
}

/**
 * From the authorization URL (at the proxy) to the client's callback: follows redirects, signs
 * in as `login` on the login form, confirms the consent form. Every URL it is sent to must be at
 * `origin` (the proxy): the upstream builds its links from the Host the proxy kept. Returns the
 * callback URL and the steps taken.
 */
export async function signInAndConsent(authorizationUrl, { origin, redirectUri, login = 'alice' }) {
  const jar = new CookieJar();
  const steps = [];
  let url = new URL(authorizationUrl);
  let response = await visit(jar, url);
  for (let hop = 0; hop < 20; hop += 1) {
    if ([302, 303].includes(response.status)) {
      const next = new URL(response.headers.get('location'), url);
      steps.push(`${response.status} → ${next.pathname}`);
      if (next.href.startsWith(redirectUri)) return { callback: next, steps, jar };
      assert.equal(next.origin, origin, `the upstream sends the browser to the proxy, not to ${next.origin}`);
      url = next;
      response = await visit(jar, url);
      continue;
    }
    assert.equal(response.status, 200, `${url.pathname}: ${response.status} ${await response.clone().text()}`);
    const { action, prompt } = readForm(await response.text(), url);
    assert.equal(action.origin, origin, 'the form posts to the proxy');
    steps.push(`${prompt} form`);
    const fields = prompt === 'login'
      ? { prompt, login, password: 'any password' }
      : { prompt };
    url = action;
    response = await visit(jar, action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
  }
  throw new Error(`no callback after 20 steps: ${steps.join(', ')}`);
}
