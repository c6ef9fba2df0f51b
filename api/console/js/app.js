// The console's shell: who is signed in, the navigation, and which page the URL's hash names.
// Pages are modules with `render(main, ctx)`; what one returns is called when it is left (to
// close its event stream and timers).

import * as api from './api.js';
import { h, fill, errorBox } from './ui.js';
import * as signin from './pages/signin.js';
import * as accounts from './pages/accounts.js';
import * as connect from './pages/connect.js';
import * as account from './pages/account.js';
import * as publish from './pages/publish.js';
import * as webhooks from './pages/webhooks.js';
import * as admin from './pages/admin.js';

const main = document.getElementById('main');
const ctx = { me: null, sandbox: false, go };
let leave = null;
// Which navigation is current: a page still loading when the operator moves on is dropped, and
// its cleanup runs at once (its stream and timers would otherwise outlive it).
let visit = 0;

const ROUTES = [
  [/^#\/accounts\/(\d+)$/, account, 'accounts'],
  [/^#\/accounts$/, accounts, 'accounts'],
  [/^#\/connect(?:\?id=(\d+))?$/, connect, 'connect'],
  [/^#\/publish$/, publish, 'publish'],
  [/^#\/webhooks$/, webhooks, 'webhooks'],
  [/^#\/admin$/, admin, 'admin'],
];

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function whoAmI() {
  if (!api.signedIn()) {
    ctx.me = null;
    return;
  }
  try {
    ctx.me = await api.get('/auth/me');
  } catch (e) {
    if (e.status === 401) api.clearSession();
    else throw e;
  }
}

function chrome() {
  const signed = ctx.me !== null;
  document.getElementById('nav').hidden = !signed;
  document.getElementById('who').hidden = !signed;
  document.getElementById('nav-admin').hidden = !(signed && ctx.me.role === 'admin');
  document.getElementById('who-email').textContent = signed ? ctx.me.email + ' (' + ctx.me.role + ')' : '';
  document.getElementById('sandbox-note').hidden = !ctx.sandbox;
}

async function route() {
  const mine = ++visit;
  if (leave) {
    try {
      leave();
    } catch (e) {
      console.error(e);
    }
    leave = null;
  }
  if (ctx.me === null && api.signedIn()) await whoAmI();
  if (mine !== visit) return;
  chrome();
  const hash = location.hash || '#/accounts';
  if (ctx.me === null) {
    fill(main);
    leave = signin.render(main, ctx) || null;
    return;
  }
  for (const [re, page, nav] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.getAttribute('href') === '#/' + nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    // Each visit renders into its own box: a stale render writes into a detached one.
    const box = h('div', { class: 'page' });
    fill(main, box);
    let done = null;
    try {
      done = (await page.render(box, ctx, m.slice(1))) || null;
    } catch (e) {
      fill(box, h('h1', {}, 'Something went wrong'), errorBox(e));
    }
    if (mine !== visit) {
      if (done) done();
      return;
    }
    leave = done;
    main.focus();
    return;
  }
  fill(main, h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/accounts' }, 'Back to the accounts')));
}

async function start() {
  try {
    const health = await api.get('/health');
    ctx.sandbox = Boolean(health.sandbox);
  } catch {
    ctx.sandbox = false;
  }
  document.getElementById('signout').addEventListener('click', async () => {
    try {
      await api.post('/auth/logout', { refresh_token: api.refreshToken() });
    } catch (e) {
      console.warn('logout', e);
    }
    api.clearSession();
  });
  api.onSignedOut(() => {
    ctx.me = null;
    go('#/accounts');
  });
  // The skip link moves the focus; as a hash it would be taken for a page.
  document.querySelector('a.skip').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener('hashchange', route);
  ctx.signedIn = async () => {
    await whoAmI();
    go(location.hash && location.hash !== '#/signin' ? location.hash : '#/accounts');
  };
  await route();
}

start();
