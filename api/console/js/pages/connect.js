// Connecting an account: create it (user or bot), then log a user account in by phone code or
// QR code — with the 2FA password step when Telegram asks for it — or import session files.
// `#/connect?id=N` continues the login of an existing account.

import * as api from '../api.js';
import { h, fill, field, form, status, badge, section, when, accountName, AUTHORIZED } from '../ui.js';

export async function render(main, ctx, [resumeId]) {
  main.append(h('h1', {}, 'Connect an account'));
  const flow = h('div', { id: 'login-flow' });
  const stops = [];
  const leave = () => stops.forEach((s) => s());

  if (resumeId) {
    const account = await api.get('/telegram/accounts/' + resumeId);
    main.append(flow);
    login(flow, account, ctx, stops);
    return leave;
  }

  const kind = h('select', { name: 'kind' }, h('option', { value: 'user' }, 'user account (phone or QR)'), h('option', { value: 'bot' }, 'bot (token)'));
  const label = h('input', { name: 'label', maxlength: 200 });
  const token = h('input', { name: 'bot_token', autocomplete: 'off', placeholder: '123456:ABC…' });
  const tokenField = field('Bot token', token, 'from @BotFather');
  tokenField.hidden = true;
  kind.addEventListener('change', () => {
    tokenField.hidden = kind.value !== 'bot';
    token.required = kind.value === 'bot';
  });
  const create = form({ id: 'create-account', 'aria-label': 'New account' }, [field('Kind', kind), field('Label', label, 'optional, shown in the console'), tokenField], 'Create', async () => {
    const body = { kind: kind.value, label: label.value || undefined };
    if (kind.value === 'bot') body.bot_token = token.value.trim();
    const account = await api.post('/telegram/accounts', body);
    create.hidden = true;
    login(flow, account, ctx, stops);
  });

  main.append(
    h('div', { class: 'grid' },
      section('New account', create, flow),
      section('Import session files', importer()),
    ),
  );
  return leave;
}

/** The login of `account`, from whatever state it is in. */
function login(box, account, ctx, stops) {
  const path = '/telegram/accounts/' + account.id;
  const head = h('p', {}, 'Account ', h('a', { href: '#/accounts/' + account.id }, '#' + account.id + ' ' + accountName(account)), ': ', h('span', { id: 'login-state' }, badge(account.state)));
  const body = h('div');
  fill(box, head, body);
  const show = (state) => fill(head.querySelector('#login-state'), badge(state));

  const done = (state = 'active') => {
    show(state);
    fill(body, h('div', { class: 'success', role: 'status', id: 'login-done' }, 'Logged in. ', h('a', { href: '#/accounts/' + account.id }, 'Open the account'), ' or ', h('a', { href: '#/accounts' }, 'see all accounts'), '.'));
  };
  const password = (hint) => {
    show('awaiting_password');
    const input = h('input', { type: 'password', name: 'two_fa_password', autocomplete: 'current-password', required: true });
    fill(body, form({ id: 'password-form', 'aria-label': '2FA password' }, [field('2FA password', input, hint ? 'hint: ' + hint : 'the account has two-step verification')], 'Check password', async () => {
      const r = await api.post(path + '/login/password', { password: input.value });
      if (r.state === 'active') done();
    }));
    input.focus();
  };
  const after = (r) => {
    if (r.state === 'active') done();
    else if (r.state === 'awaiting_password') password(r.hint);
  };

  if (account.kind === 'bot') {
    if (account.state === 'active') done();
    else fill(body, h('p', {}, 'A bot logs in with its token when created; restart it from its page if it is not active.'));
    return;
  }
  if (AUTHORIZED.has(account.state)) return done(account.state);
  if (account.state === 'awaiting_password') return password();

  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const pane = h('div', { role: 'tabpanel' });
  const choose = (which) => {
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.tab === which));
    stops.forEach((s) => s());
    stops.length = 0;
    if (which === 'code') byCode(pane, path, ctx, after);
    else stops.push(byQr(pane, account, path, ctx, after, show));
  };
  tabs.append(
    h('button', { type: 'button', role: 'tab', 'data-tab': 'code', onclick: () => choose('code') }, 'Phone code'),
    h('button', { type: 'button', role: 'tab', 'data-tab': 'qr', onclick: () => choose('qr') }, 'QR code'),
  );
  fill(body, tabs, pane);
  choose(account.state === 'awaiting_qr' ? 'qr' : 'code');
}

function byCode(pane, path, ctx, after) {
  const phone = h('input', { type: 'tel', name: 'phone', autocomplete: 'tel', required: true, placeholder: '+15550100123' });
  const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
  const codeForm = form({ id: 'code-form', 'aria-label': 'Login code' }, [field('Code', code, 'as Telegram sent it')], 'Sign in', async () => {
    after(await api.post(path + '/login/sign-in', { code: code.value.trim() }));
  });
  codeForm.hidden = true;
  if (ctx.sandbox) {
    const fillIn = h('button', { type: 'button', class: 'secondary', id: 'sandbox-code' }, 'Fill in the code the sandbox sent');
    const st = status();
    fillIn.addEventListener('click', async () => {
      st.clear();
      try {
        code.value = (await api.get('/sandbox/codes/' + encodeURIComponent(phone.value.trim()))).code;
      } catch (e) {
        st.error(e);
      }
    });
    codeForm.prepend(h('div', { class: 'actions' }, fillIn), st.el);
  }
  const phoneForm = form({ id: 'phone-form', 'aria-label': 'Phone' }, [field('Phone', phone, 'international form, with +')], 'Send code', async (st) => {
    const r = await api.post(path + '/login/code', { phone: phone.value.trim() });
    st.ok('Code sent (' + (r.code_type || 'app') + ').');
    codeForm.hidden = false;
    code.focus();
  });
  fill(pane, phoneForm, codeForm);
  phone.focus();
}

/** Shows the login QR code, renews it before it expires, and follows the account's state. */
function byQr(pane, account, path, ctx, after, show) {
  const img = h('img', { id: 'qr-image', alt: 'QR code to scan with the Telegram app: Settings → Devices → Link Desktop Device' });
  const expiry = h('p', { class: 'small muted' });
  const st = status();
  const side = h('div', {}, h('p', {}, 'Scan it with the Telegram app on a phone that is logged in: Settings → Devices → Link Desktop Device.'), expiry);
  let timer = null;
  let url = null;
  let stopped = false;

  const load = async () => {
    clearTimeout(timer);
    try {
      const qr = await api.post(path + '/login/qr', {});
      const next = await api.blobUrl(path + '/login/qr.png');
      if (url) URL.revokeObjectURL(url);
      url = next;
      img.src = url;
      img.dataset.loginUrl = qr.url;
      expiry.textContent = 'Renewed automatically; this one is valid until ' + when(qr.expires_at) + '.';
      const ms = Math.max(new Date(qr.expires_at) - Date.now() - 2000, 3000);
      if (!stopped) timer = setTimeout(load, ms);
    } catch (e) {
      st.error(e);
    }
  };

  if (ctx.sandbox) {
    const phone = h('input', { type: 'tel', name: 'scan_phone', value: '+1555' + String(Date.now()).slice(-7, -1) + '0', required: true });
    side.append(form({ id: 'sandbox-scan', 'aria-label': 'Scan in the sandbox' }, [field('Sandbox: scan it as the phone', phone, 'end it with 9 for one with a 2FA password')], 'Scan in the sandbox', async () => {
      await api.post('/sandbox/qr/scan', { account_id: account.id, phone: phone.value.trim() });
    }));
  }
  fill(pane, h('div', { class: 'qr' }, img, side), st.el);
  load();

  const unfollow = api.follow({ types: 'account.state_changed', account_id: account.id }, (ev) => {
    show(ev.data.to);
    if (ev.data.to === 'active' || ev.data.to === 'awaiting_password') {
      stop();
      after({ state: ev.data.to });
    }
  });
  // The stream gives only events after it connected; a scan quicker than that is seen here.
  const poll = setInterval(async () => {
    try {
      const a = await api.get(path);
      if (a.state === 'active' || a.state === 'awaiting_password') {
        show(a.state);
        stop();
        after({ state: a.state });
      }
    } catch (e) {
      console.warn(e);
    }
  }, 3000);
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(poll);
    clearTimeout(timer);
    unfollow();
    if (url) URL.revokeObjectURL(url);
    url = null;
  };
  return stop;
}

/**
 * Session files dropped (or chosen): a Telethon or Pyrogram `.session` file (SQLite) goes as it
 * is (format `session_file`, its bytes in base64, read in the server's memory); each line of a
 * text file is a session string of the chosen format; a tgfleet export
 * (`{"format":…,"session":…}`) says its own. Strings go 100 to a `POST /telegram/accounts/import`,
 * files one per request (they are kilobytes, the body limit is 1 MiB); one result per session.
 */
function importer() {
  const format = h('select', { name: 'format' }, ['telethon', 'pyrogram', 'tgfleet'].map((f) => h('option', { value: f }, f)));
  const input = h('input', { type: 'file', multiple: true, name: 'files', accept: '.txt,.json,.session,text/plain,application/json' });
  const drop = h('div', { class: 'drop', id: 'import-drop', tabindex: 0, role: 'button', 'aria-label': 'Drop session files here, or press Enter to choose them' }, 'Drop session files here, or choose them');
  const st = status();
  const results = h('div', { id: 'import-results' });

  const send = async (files) => {
    st.clear();
    fill(results);
    try {
      const sessions = [];
      for (const file of files) sessions.push(...(await read(file, format.value)));
      if (!sessions.length) throw new api.ApiError(0, 'NO_SESSIONS', 'no session string found in the files');
      const out = [];
      for (let i = 0; i < sessions.length;) {
        let n = 1;
        if (sessions[i].format !== 'session_file') while (n < 100 && i + n < sessions.length && sessions[i + n].format !== 'session_file') n++;
        const batch = sessions.slice(i, i + n);
        const r = await api.post('/telegram/accounts/import', { sessions: batch });
        out.push(...r.results);
        i += batch.length;
      }
      fill(results, h('ul', {}, out.map((r, i) => h('li', { 'data-status': r.status }, sessions[i].label + ': ', badge(r.status), r.account_id ? [' ', h('a', { href: '#/accounts/' + r.account_id }, '#' + r.account_id)] : null, r.state ? [' ', badge(r.state)] : null, r.code ? [' ', h('code', {}, r.code), ' ', r.error || ''] : null))));
    } catch (e) {
      st.error(e);
    }
  };
  drop.addEventListener('click', () => input.click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    send([...e.dataTransfer.files]);
  });
  input.addEventListener('change', () => send([...input.files]));
  return h('div', {},
    h('p', { class: 'small muted' }, 'Telethon or Pyrogram .session files, text files with one session string per line (Telethon StringSession, Pyrogram session string), or tgfleet exports. For zip archives of .session + .json pairs, use `tgfleet accounts import FILE.zip` on the command line.'),
    field('Format of the strings', format), drop, h('div', { hidden: true }, field('Files', input)), st.el, results);
}

const SQLITE = 'SQLite format 3\0';

async function read(file, format) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const label = file.name.replace(/\.[^.]*$/, '');
  if (String.fromCharCode(...bytes.subarray(0, SQLITE.length)) === SQLITE) {
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return [{ format: 'session_file', session: btoa(binary), label }];
  }
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    throw new api.ApiError(0, 'ZIP_ARCHIVE', file.name + ' is a zip archive: import it with `tgfleet accounts import ' + file.name + '`');
  }
  const text = new TextDecoder().decode(bytes).trim();
  if (text.startsWith('{')) {
    const j = JSON.parse(text);
    if (j.session && j.format) return [{ format: j.format, session: j.session, label: j.label || file.name }];
    throw new api.ApiError(0, 'UNKNOWN_JSON', file.name + ' is JSON without "format" and "session"');
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.map((session, i) => ({ format, session, label: lines.length > 1 ? file.name + ' #' + (i + 1) : label }));
}
