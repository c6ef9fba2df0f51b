// One account: its facts and state (live), actions, state history and flood waits (from the
// event log), the integration log and its errors, its chats (create a channel, join), and a
// form to send a message.

import * as api from '../api.js';
import { h, fill, field, check, form, status, badge, section, table, when, accountName, debounce, errorBox, AUTHORIZED } from '../ui.js';

export async function render(main, ctx, [id]) {
  const path = '/telegram/accounts/' + id;
  let account = await api.get(path);
  const title = h('h1', {}, accountName(account), ' ', h('span', { id: 'account-state' }, badge(account.state)));
  const facts = h('dl', { class: 'facts' });
  const st = status();
  const history = h('div');
  const floods = h('div');
  const logs = h('div');
  const errors = h('div');
  const chats = h('div', { id: 'chats' });

  const drawFacts = () => {
    fill(title.querySelector('#account-state'), badge(account.state));
    const rows = [
      ['Id', account.id], ['Kind', account.kind], ['Phone', account.phone], ['Username', account.username && '@' + account.username],
      ['Telegram user id', account.tg_user_id], ['DC', account.dc_id], ['Flood wait until', when(account.flood_wait_until)],
      ['Last error', account.last_error], ['Restarts', account.restarts], ['Receives updates', account.receive_updates ? 'yes' : 'no'],
      ['Proxy', account.proxy_id], ['2FA password stored', account.two_fa_password_stored ? 'yes' : 'no'],
      ['Device', account.device && account.device.device_model + ', ' + account.device.system_version + ', app ' + account.device.app_version],
      ['Created', when(account.created_at)], ['Updated', when(account.updated_at)],
    ];
    fill(facts, rows.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
  };

  const act = (label, what, cls, confirmText) =>
    h('button', {
      type: 'button', class: cls, onclick: async () => {
        if (confirmText && !confirm(confirmText)) return;
        st.clear();
        try {
          if (what === 'delete') {
            await api.del(path);
            ctx.go('#/accounts');
            return;
          }
          await api.post(path + '/' + what, {});
          st.ok(label + ': done.');
          await refresh();
        } catch (e) {
          st.error(e);
        }
      },
    }, label);

  const receive = h('input', { type: 'checkbox', checked: account.receive_updates });
  receive.addEventListener('change', async () => {
    st.clear();
    try {
      account = await api.patch(path, { receive_updates: receive.checked });
      drawFacts();
    } catch (e) {
      receive.checked = !receive.checked;
      st.error(e);
    }
  });

  async function loadEvents(types, box, describe) {
    // The log is oldest first; its newest 50 of these types are what is shown.
    const events = [];
    let after = 0;
    for (let i = 0; i < 20; i++) {
      const page = await api.get('/events/log' + api.query({ account_id: id, types, after, limit: 1000 }));
      events.push(...page.events);
      if (page.events.length < 1000) break;
      after = page.next_after;
    }
    const rows = events.slice(-50).reverse().map((e) => h('tr', {}, h('td', { class: 'small' }, when(e.occurred_at)), h('td', {}, describe(e))));
    fill(box, rows.length ? table(['When', 'What'], rows) : h('p', { class: 'muted small' }, 'None in the event log (kept events.retention_h).'));
  }

  const loadHistory = () => loadEvents('account.state_changed', history, (e) => [badge(e.data.from), ' → ', badge(e.data.to), e.data.cause ? h('span', { class: 'small muted' }, ' ' + e.data.cause) : null]);
  const loadFloods = () => loadEvents('account.flood_wait', floods, (e) => [e.data.seconds + ' s, until ' + when(e.data.until), e.data.cause ? h('span', { class: 'small muted' }, ' ' + e.data.cause) : null]);

  async function loadLogs() {
    const page = await api.get('/telegram/logs' + api.query({ account_id: id, limit: 50 }));
    fill(logs, table(['When', 'Level', 'Event', 'Message'], page.items.map((l) => h('tr', {}, h('td', { class: 'small' }, when(l.at)), h('td', {}, l.level), h('td', {}, l.event), h('td', {}, l.error_code ? [h('code', {}, l.error_code), ' '] : null, l.message)))));
    const bad = await api.get('/telegram/logs' + api.query({ account_id: id, level: 'error', limit: 10 }));
    fill(errors, bad.items.length ? h('ul', {}, bad.items.map((l) => h('li', {}, when(l.at) + ' ', l.error_code ? h('code', {}, l.error_code) : null, ' ' + l.message))) : h('p', { class: 'muted small' }, 'No errors logged.'));
  }

  async function loadChats() {
    try {
      const r = await api.get(path + '/chats' + api.query({ limit: 100 }));
      fill(chats, r.chats.length
        ? table(['Chat id', 'Type', 'Title', 'Username', 'Role', 'Members'], r.chats.map((c) => h('tr', { 'data-chat-id': c.chat_id }, h('td', {}, String(c.chat_id)), h('td', {}, c.type), h('td', {}, c.title), h('td', {}, c.username ? '@' + c.username : ''), h('td', {}, c.role || ''), h('td', {}, c.members_count == null ? '' : String(c.members_count)))))
        : h('p', { class: 'muted small' }, 'No chats.'));
    } catch (e) {
      fill(chats, h('p', { class: 'muted small' }, 'Chats are read through the live account:'), errorBox(e));
    }
  }

  async function refresh() {
    account = await api.get(path);
    drawFacts();
    await Promise.allSettled([loadHistory(), loadFloods(), loadLogs()]);
  }

  // Forms: create a channel, join a chat, send a message.
  const chatType = h('select', { name: 'type' }, h('option', { value: 'channel' }, 'channel'), h('option', { value: 'supergroup' }, 'supergroup'));
  const chatTitle = h('input', { name: 'title', required: true, maxlength: 128 });
  const chatAbout = h('input', { name: 'about', maxlength: 255 });
  const chatUsername = h('input', { name: 'username', placeholder: 'optional public name' });
  const createChat = form({ id: 'create-chat', 'aria-label': 'Create a channel' }, [field('Type', chatType), field('Title', chatTitle), field('About', chatAbout), field('Public username', chatUsername)], 'Create', async (s) => {
    const c = await api.post(path + '/chats', { type: chatType.value, title: chatTitle.value, about: chatAbout.value || undefined, username: chatUsername.value.trim() || undefined });
    s.ok('Created ' + c.type + ' ' + c.title + ' (' + c.chat_id + ').');
    await loadChats();
  });
  const link = h('input', { name: 'link', required: true, placeholder: '@name, t.me/name or t.me/+hash' });
  const join = form({ class: 'inline', 'aria-label': 'Join a chat' }, [field('Join by link', link)], 'Join', async (s) => {
    const c = await api.post(path + '/chats/join', { link: link.value.trim() });
    s.ok('Joined ' + c.title + '.');
    await loadChats();
  });
  const peer = h('input', { name: 'peer', required: true, value: 'me' });
  const text = h('textarea', { name: 'text', required: true });
  const mode = h('select', { name: 'parse_mode' }, h('option', { value: '' }, 'plain'), h('option', { value: 'html' }, 'html'), h('option', { value: 'markdown' }, 'markdown'));
  const send = form({ id: 'send-message', 'aria-label': 'Send a message' }, [field('To', peer, 'me, @username, +phone or a chat id'), field('Text', text), field('Formatting', mode)], 'Send', async (s) => {
    const r = await api.post(path + '/messages', { peer: peer.value.trim(), text: text.value, parse_mode: mode.value || undefined });
    s.ok('Sent, message id ' + r.message_id + '.');
  });

  drawFacts();
  main.append(
    title,
    h('div', { class: 'actions' },
      AUTHORIZED.has(account.state) || account.kind === 'bot' ? null : h('a', { href: '#/connect?id=' + id }, 'Log in'),
      act('Restart', 'restart', 'secondary'),
      act('Log out', 'logout', 'danger', 'Log this account out of Telegram and wipe its session?'),
      act('Delete', 'delete', 'danger', 'Delete this account and its session?'),
      check('Receive updates (incoming messages as events)', receive),
    ),
    st.el,
    h('div', { class: 'grid' },
      section('Account', facts),
      section('State history', history),
      section('Flood waits', floods),
      section('Last errors', errors),
    ),
    section('Chats', chats, h('div', { class: 'grid' }, createChat, join)),
    section('Send a message', send),
    section('Integration log', logs),
  );
  await Promise.allSettled([refresh(), loadChats()]);

  const again = debounce(refresh, 300);
  return api.follow({ account_id: id, types: 'account.state_changed,account.flood_wait' }, (ev) => {
    if (ev.type === 'account.state_changed') {
      account.state = ev.data.to;
      drawFacts();
    }
    again();
  });
}

