// The accounts table: every account the user may see (admins: all), filtered by state and
// kind, searched by label, phone, username or id; bulk restart and log-out; state badges that
// follow `account.state_changed` events live, without a reload.

import * as api from '../api.js';
import { h, fill, field, badge, status, table, when, debounce, accountName } from '../ui.js';

export const STATES = [
  'new', 'awaiting_code', 'awaiting_password', 'awaiting_qr', 'active', 'reconnecting', 'flood_wait',
  'hibernated', 'unauthorized', 'banned', 'quarantined', 'logged_out', 'stopped',
];

export async function render(main) {
  const st = status();
  const stateFilter = h('select', { name: 'state' }, h('option', { value: '' }, 'any state'), STATES.map((s) => h('option', { value: s }, s.replace(/_/g, ' '))));
  const kindFilter = h('select', { name: 'kind' }, h('option', { value: '' }, 'any kind'), h('option', { value: 'user' }, 'user'), h('option', { value: 'bot' }, 'bot'));
  const search = h('input', { type: 'search', name: 'search', placeholder: 'label, phone, @username or id' });
  const live = h('span', { class: 'small muted', id: 'live' }, 'connecting to events…');
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all shown accounts' });
  const body = h('tbody', { id: 'accounts-body' });
  const count = h('span', { class: 'small muted' });
  let accounts = [];
  const selected = new Set();

  const restartBtn = h('button', { type: 'button', class: 'secondary', disabled: true, onclick: () => bulk('restart') }, 'Restart selected');
  const logoutBtn = h('button', { type: 'button', class: 'danger', disabled: true, onclick: () => bulk('logout') }, 'Log out selected');

  function shown() {
    const q = search.value.trim().toLowerCase().replace(/^@/, '');
    return accounts.filter((a) =>
      (!stateFilter.value || a.state === stateFilter.value) &&
      (!kindFilter.value || a.kind === kindFilter.value) &&
      (!q || [a.label, a.phone, a.username, String(a.id), a.tg_user_id && String(a.tg_user_id)]
        .some((v) => v && v.toLowerCase().includes(q))));
  }

  function row(a) {
    const box = h('input', {
      type: 'checkbox',
      'aria-label': 'Select ' + accountName(a),
      checked: selected.has(a.id),
      onchange: (e) => {
        if (e.target.checked) selected.add(a.id);
        else selected.delete(a.id);
        buttons();
      },
    });
    return h('tr', { 'data-account-id': a.id },
      h('td', {}, box),
      h('td', {}, h('a', { href: '#/accounts/' + a.id }, '#' + a.id)),
      h('td', {}, accountName(a)),
      h('td', { class: 'hide-narrow' }, a.kind),
      h('td', { class: 'hide-narrow' }, a.phone || (a.username ? '@' + a.username : '')),
      h('td', { class: 'state' }, badge(a.state)),
      h('td', { class: 'hide-narrow small' }, a.flood_wait_until ? 'until ' + when(a.flood_wait_until) : ''),
      h('td', { class: 'hide-narrow small' }, a.last_error || ''),
    );
  }

  function draw() {
    const list = shown();
    fill(body, list.length ? list.map(row) : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, accounts.length ? 'No account matches.' : 'No accounts yet: connect one.')));
    count.textContent = list.length + ' of ' + accounts.length + ' shown' + (accounts.more ? ' (the first ' + accounts.length + ' accounts only: the API lists the rest)' : '');
    selectAll.checked = list.length > 0 && list.every((a) => selected.has(a.id));
  }

  function buttons() {
    restartBtn.disabled = logoutBtn.disabled = selected.size === 0;
  }

  async function load() {
    try {
      accounts = await api.all('/telegram/accounts');
      for (const id of [...selected]) if (!accounts.some((a) => a.id === id)) selected.delete(id);
      draw();
      buttons();
    } catch (e) {
      st.error(e);
    }
  }

  async function bulk(what) {
    const ids = [...selected];
    const verb = what === 'restart' ? 'Restart' : 'Log out of Telegram and wipe the session of';
    if (!confirm(verb + ' ' + ids.length + ' account(s)?')) return;
    st.clear();
    const results = await Promise.allSettled(ids.map((id) => api.post('/telegram/accounts/' + id + '/' + what, {})));
    const failed = results.map((r, i) => [r, ids[i]]).filter(([r]) => r.status === 'rejected');
    if (failed.length) {
      const [r, id] = failed[0];
      r.reason.message = 'account ' + id + ': ' + r.reason.message + (failed.length > 1 ? ' (and ' + (failed.length - 1) + ' more failed)' : '');
      st.error(r.reason);
    } else {
      st.ok((what === 'restart' ? 'Restarted ' : 'Logged out ') + ids.length + ' account(s).');
    }
    await load();
  }

  selectAll.addEventListener('change', () => {
    for (const a of shown()) {
      if (selectAll.checked) selected.add(a.id);
      else selected.delete(a.id);
    }
    draw();
    buttons();
  });
  for (const f of [stateFilter, kindFilter]) f.addEventListener('change', draw);
  search.addEventListener('input', draw);

  main.append(
    h('h1', {}, 'Accounts'),
    h('section', {},
      h('form', { class: 'inline', role: 'search', onsubmit: (e) => e.preventDefault() },
        field('State', stateFilter), field('Kind', kindFilter), field('Search', search)),
      h('div', { class: 'actions' }, restartBtn, logoutBtn, h('a', { href: '#/connect' }, 'Connect an account'), count, live),
      st.el,
      table(['', 'Id', 'Name', ['Kind', 'hide-narrow'], ['Phone / username', 'hide-narrow'], 'State', ['Flood wait', 'hide-narrow'], ['Last error', 'hide-narrow']], [], { id: 'accounts' }),
    ),
  );
  main.querySelector('#accounts thead th').append(selectAll);
  main.querySelector('#accounts tbody').replaceWith(body);
  await load();

  const reload = debounce(load, 300);
  return api.follow(
    { types: 'account.state_changed,account.flood_wait' },
    (ev) => {
      const a = accounts.find((x) => x.id === ev.account_id);
      if (!a) return reload(); // an account created elsewhere
      if (ev.type === 'account.state_changed') a.state = ev.data.to;
      if (ev.type === 'account.flood_wait') a.flood_wait_until = ev.data.until;
      draw();
      // The row's other columns (last error, username) come with the account itself.
      reload();
    },
    (s) => {
      live.textContent = s === 'live' ? 'live' : 'reconnecting to events…';
      if (s === 'live') reload();
    },
  );
}
