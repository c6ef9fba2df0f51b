// The console walkthrough in a real headless Chromium, against a `tgfleet serve --sandbox` that
// tests/console.rs started: sign in → connect an account by QR (the sandbox scans it) → it turns
// active in the table without a reload → create a channel → compose a formatted post with a
// photo, schedule it 3 s ahead → it shows `published` (and testdc holds it); a 2FA login; API
// errors shown as the API states them; webhooks; admin; sign out. Screenshots of each page go
// to $SCREENSHOTS. Exits non-zero on the first failed check, saying which.
//
// Env: BASE_URL (http://127.0.0.1:PORT), CHROMIUM (the browser binary), SCREENSHOTS (a folder),
// ADMIN_EMAIL / ADMIN_PASSWORD (an admin the test created).

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOTS;
const API = BASE + '/api/v1';
fs.mkdirSync(SHOTS, { recursive: true });

// A 1×1 PNG, as README's first session uses.
const PIXEL = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP438AAAAQBAYDFKhhdAAAAAElFTkSuQmCC', 'base64');
const pixelPath = path.join(SHOTS, 'pixel.png');
fs.writeFileSync(pixelPath, PIXEL);

let step = 'start';
let current = null; // the page, for a screenshot of where a failure happened
const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});

try {
  await run();
  console.log('console walkthrough: every step passed');
} catch (e) {
  console.error(`console walkthrough failed at step "${step}":`, e);
  if (current) {
    await shot(current, 'failure').catch(() => {});
    const shown = await current.locator('main').innerText().catch(() => '');
    console.error('--- the page showed ---\n' + shown);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

function watch(page) {
  // An uncaught exception or a CSP refusal in the console is a defect even when the page works.
  page.on('pageerror', (e) => problems.push(`${step}: uncaught ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`${step}: ${m.text()}`);
  });
}

async function api(method, route, token, body) {
  const r = await fetch(API + route, {
    method,
    headers: Object.assign({ 'content-type': 'application/json' }, token ? { authorization: 'Bearer ' + token } : {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Every visible form control has an accessible name (a label or aria-label). */
/** Opens the connect page's QR tab and waits until the code is drawn. */
async function showQr(page) {
  await page.click('button[data-tab=qr]');
  await page.waitForFunction(() => {
    const img = document.querySelector('#qr-image');
    return img && img.complete && img.naturalWidth > 100;
  });
}

async function labelled(page) {
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea')]
    .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unnamed, [], `${step}: form fields without a label`);
}

async function run() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  current = page;
  watch(page);

  step = 'the page is served with its protections';
  const first = await page.goto(BASE + '/');
  const headers = first.headers();
  assert.match(headers['content-security-policy'], /script-src 'self'/);
  assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
  assert.equal(headers['x-frame-options'], 'DENY');
  await page.waitForSelector('#signin-form');
  await labelled(page);
  await shot(page, '01-sign-in');

  step = 'a wrong password shows the API error as the API states it';
  const email = `console-${Date.now()}@example.org`;
  const password = 'correct horse battery staple';
  const expected = await api('POST', '/auth/login', null, { email, password: 'not the password' });
  assert.equal(expected.status, 401);
  await page.fill('#signin-form input[name=email]', email);
  await page.fill('#signin-form input[name=password]', 'not the password');
  await page.click('#signin-form button[type=submit]');
  const err = page.locator('#signin-form .error');
  await err.waitFor();
  assert.equal(await err.getAttribute('data-code'), expected.body.error.code);
  assert.ok((await err.textContent()).includes(expected.body.error.message), await err.textContent());

  step = 'register and sign in';
  await page.fill('#register-form input[name=email]', email);
  await page.fill('#register-form input[name=new-password]', password);
  await page.click('#register-form button[type=submit]');
  await page.waitForSelector('#accounts');
  await page.waitForSelector('#live:text("live")');
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('tgfleet.console.session')).access_token);
  await shot(page, '02-accounts-empty');

  step = 'connect an account by QR';
  await page.click('nav a[href="#/connect"]');
  await page.fill('#create-account input[name=label]', 'QR account');
  await page.click('#create-account button[type=submit]');
  await showQr(page);
  const loginUrl = await page.getAttribute('#qr-image', 'data-login-url');
  assert.match(loginUrl, /^tg:\/\/login\?token=/);
  await labelled(page);
  await shot(page, '03-connect-qr');
  const accounts = await api('GET', '/telegram/accounts', token);
  const qrAccount = accounts.body.items.find((a) => a.label === 'QR account');
  assert.equal(qrAccount.state, 'awaiting_qr');

  step = 'the account turns active in the table without a reload';
  await page.click('nav a[href="#/accounts"]');
  await page.evaluate(() => { window.__sameDocument = true; });
  const badge = page.locator(`tr[data-account-id="${qrAccount.id}"] td.state .badge`);
  assert.equal(await badge.getAttribute('data-state'), 'awaiting_qr');
  await page.waitForSelector('#live:text("live")');
  const scan = await api('POST', '/sandbox/qr/scan', token, { account_id: qrAccount.id, phone: '+1555' + String(Date.now()).slice(-6) + '0' });
  assert.equal(scan.status, 204, JSON.stringify(scan.body));
  await page.waitForSelector(`tr[data-account-id="${qrAccount.id}"] td.state .badge[data-state=active]`, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');
  await shot(page, '04-accounts-active');

  step = 'the table is readable at 360 px';
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 362, `the page is ${overflow}px wide at 360px`);
  await shot(page, '05-accounts-360px');
  await page.setViewportSize({ width: 1280, height: 900 });

  step = 'create a channel from the account page';
  await page.click(`tr[data-account-id="${qrAccount.id}"] a`);
  await page.waitForSelector('#create-chat');
  await page.fill('#create-chat input[name=title]', 'Console digest');
  await page.click('#create-chat button[type=submit]');
  await page.waitForSelector('#create-chat .success');
  const chatRow = page.locator('#chats tr', { hasText: 'Console digest' });
  await chatRow.waitFor();
  const chatId = await chatRow.getAttribute('data-chat-id');
  assert.match(chatId, /^-100\d+$/);
  await page.waitForSelector('#account-state .badge[data-state=active]');
  await labelled(page);
  await shot(page, '06-account');

  step = 'compose a formatted post with a photo, scheduled 3 s ahead';
  await page.click('nav a[href="#/publish"]');
  await page.waitForSelector('#compose');
  await page.fill('#post-text', '<b>Hello</b> from the <i>console</i>');
  await page.waitForSelector('#post-preview strong:text("Hello")');
  await page.waitForSelector('#post-preview em:text("console")');
  await page.setInputFiles('#post-media', pixelPath);
  await page.waitForSelector('#uploads li[data-media-id]');
  assert.equal(await page.locator('#uploads progress').evaluate((p) => p.value), 1);
  await page.check(`input[name=target][value="${qrAccount.id}|${chatId}"]`);
  const pad = (n) => String(n).padStart(2, '0');
  const localIn = (ms) => {
    const at = new Date(Date.now() + ms);
    return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  };
  await page.check('input[name=when][value=later]');
  await page.fill('#publish-at', localIn(60000));
  await labelled(page);
  await shot(page, '07-compose');
  // Set just before the click, so a slow machine's screenshot does not eat the 3 s.
  await page.fill('#publish-at', localIn(3000));
  await page.click('#compose button[type=submit]');
  await page.waitForSelector('#compose .success');
  const postRow = page.locator('#posts tr[data-post-id]').first();
  assert.equal(await postRow.locator('.post-state .badge').getAttribute('data-state'), 'scheduled');
  await page.waitForSelector('#posts tr[data-post-id] .post-state .badge[data-state=published]', { timeout: 30000 });
  await shot(page, '08-posts-published');

  step = 'testdc received the post as composed';
  const history = await api('GET', `/telegram/accounts/${qrAccount.id}/chats/${chatId}/messages?limit=5`, token);
  assert.equal(history.status, 200, JSON.stringify(history.body));
  const sent = history.body.messages[0];
  assert.equal(sent.text, 'Hello from the console');
  assert.deepEqual(sent.entities.map((e) => [e.type, e.offset, e.length]), [['bold', 0, 5], ['italic', 15, 7]]);
  assert.equal(sent.media && sent.media.kind, 'photo');

  step = 'bad markup shows MARKUP_INVALID in the preview';
  await page.fill('#post-text', '<b>unclosed');
  await page.waitForSelector('#preview-error .error[data-code=MARKUP_INVALID]');

  step = 'a 2FA login by phone code';
  await page.click('nav a[href="#/connect"]');
  await page.fill('#create-account input[name=label]', '2FA account');
  await page.click('#create-account button[type=submit]');
  await page.waitForSelector('#phone-form');
  await page.fill('#phone-form input[name=phone]', '+1555' + String(Date.now()).slice(-6) + '9');
  await page.click('#phone-form button[type=submit]');
  await page.waitForSelector('#code-form:not([hidden])');
  await page.click('#sandbox-code');
  await page.waitForFunction(() => /^\d{5}$/.test(document.querySelector('#code-form input[name=code]').value));
  await page.click('#code-form button[type=submit]');
  await page.waitForSelector('#password-form');
  await page.fill('#password-form input[name=two_fa_password]', 'not-the-password');
  await page.click('#password-form button[type=submit]');
  const pwErr = page.locator('#password-form .error');
  await pwErr.waitFor();
  assert.equal(await pwErr.getAttribute('data-code'), 'PASSWORD_HASH_INVALID', await pwErr.textContent());
  await shot(page, '09-connect-2fa');
  await page.fill('#password-form input[name=two_fa_password]', 'sandbox-2fa');
  await page.click('#password-form button[type=submit]');
  await page.waitForSelector('#login-done');
  await page.waitForSelector('#login-state .badge[data-state=active]');

  step = 'a QR login scanned with the console\'s own sandbox form';
  await page.click('nav a[href="#/connect"]');
  await page.fill('#create-account input[name=label]', 'QR scanned in the console');
  await page.click('#create-account button[type=submit]');
  await showQr(page);
  await page.click('#sandbox-scan button[type=submit]');
  await page.waitForSelector('#login-done', { timeout: 20000 });
  await page.waitForSelector('#login-state .badge[data-state=active]');

  step = 'a webhook: created, its secret shown once, a test ping delivered';
  const hits = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      hits.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    await page.click('nav a[href="#/webhooks"]');
    await page.fill('#create-webhook input[name=url]', `http://127.0.0.1:${receiver.address().port}/hook`);
    await page.click('#create-webhook button[type=submit]');
    const secret = await page.locator('#webhook-secret .secret').textContent();
    assert.match(secret, /^whsec_/);
    await page.click('button:text("Send a test ping")');
    // The dispatcher delivers in the background: look again until its attempt is logged.
    for (let i = 0; ; i++) {
      if (await page.locator('#deliveries .badge[data-state=succeeded]').count()) break;
      assert.ok(i < 40, 'the ping never showed as succeeded in the delivery log');
      await page.waitForTimeout(500);
      await page.click('button:text("Refresh")');
    }
    assert.ok(hits.some((h) => h.headers['webhook-signature'] && h.body.includes('"ping"')), 'the receiver got a signed ping');
    await labelled(page);
    await shot(page, '10-webhooks');
  } finally {
    receiver.close();
  }

  step = 'sign out revokes the token';
  await page.click('#signout');
  await page.waitForSelector('#signin-form');
  assert.equal((await api('GET', '/auth/me', token)).status, 401);

  step = 'admin: users and health';
  await page.fill('#signin-form input[name=email]', process.env.ADMIN_EMAIL);
  await page.fill('#signin-form input[name=password]', process.env.ADMIN_PASSWORD);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav-admin:not([hidden])');
  await page.click('#nav-admin');
  await page.waitForSelector(`#users td:text("${email}")`);
  await page.waitForSelector('#health .badge');
  await page.waitForSelector('#nodes p, #nodes table');
  await labelled(page);
  await shot(page, '11-admin');
  // The admin sees every account, the other user's included.
  await page.click('nav a[href="#/accounts"]');
  await page.waitForSelector(`tr[data-account-id="${qrAccount.id}"]`);

  assert.deepEqual(problems, [], 'errors in the page');
}
