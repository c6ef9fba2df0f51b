// Administration (admins only; the API refuses others): users and their roles, the service's
// detailed health, and the nodes of a cluster once there is one.

import * as api from '../api.js';
import { h, fill, check, status, badge, section, table, when } from '../ui.js';

export async function render(main, ctx) {
  main.append(h('h1', {}, 'Admin'));
  if (ctx.me.role !== 'admin') {
    main.append(h('p', {}, 'Only admins see this page.'));
    return;
  }
  const st = status();
  const users = h('div', { id: 'users' });
  const health = h('div', { id: 'health' });
  const nodes = h('div', { id: 'nodes' });

  async function loadUsers() {
    const items = await api.all('/users');
    fill(users, table(['Id', 'Email', 'Role', 'Disabled', 'Created'], items.map((u) => {
      const self = u.id === ctx.me.id;
      const role = h('select', { 'aria-label': 'Role of ' + u.email, disabled: self }, ['user', 'admin'].map((r) => h('option', { value: r, selected: u.role === r }, r)));
      const disabled = h('input', { type: 'checkbox', checked: u.disabled, disabled: self });
      const save = (body, undo) => api.patch('/users/' + u.id, body).then(() => st.ok(u.email + ': saved.'), (e) => {
        undo();
        st.error(e);
      });
      role.addEventListener('change', () => save({ role: role.value }, () => { role.value = u.role; }));
      disabled.addEventListener('change', () => save({ disabled: disabled.checked }, () => { disabled.checked = u.disabled; }));
      return h('tr', { 'data-user-id': u.id }, h('td', {}, String(u.id)), h('td', {}, u.email, self ? h('span', { class: 'small muted' }, ' (you)') : null), h('td', {}, role), h('td', {}, check('disabled', disabled)), h('td', { class: 'small' }, when(u.created_at)));
    })));
  }

  async function loadHealth() {
    const d = await api.get('/health/detailed');
    const comp = (name, c) => h('tr', {}, h('td', {}, name), h('td', {}, badge(c.status)), h('td', { class: 'small' }, c.detail || ''));
    fill(health,
      h('p', {}, badge(d.status), ' version ' + d.version + ', up ' + Math.round(d.uptime_s / 60) + ' min'),
      table(['Component', 'Status', 'Detail'], [comp('database', d.database), comp('vault', d.vault), comp('telegram', d.telegram)]),
      h('h2', {}, 'Accounts by state'),
      table(['State', 'Accounts'], Object.entries(d.accounts).map(([s, n]) => h('tr', {}, h('td', {}, badge(s)), h('td', {}, String(n))))),
      d.supervisors ? h('p', { class: 'small muted' }, d.supervisors.actors + ' actors under ' + d.supervisors.supervisors + ' supervisors, ' + d.supervisors.restarts + ' restarts, ' + d.supervisors.quarantined + ' quarantined') : null);
  }

  async function loadNodes() {
    try {
      const r = await api.get('/nodes');
      const list = r.nodes || r;
      fill(nodes, table(['Node', 'Address', 'Version', 'Heartbeat', 'Accounts'], list.map((n) => h('tr', {}, h('td', {}, n.id), h('td', {}, n.address), h('td', {}, n.version), h('td', { class: 'small' }, when(n.heartbeat_at)), h('td', { class: 'small' }, Object.entries(n.accounts_by_state || {}).map(([s, c]) => s + ' ' + c).join(', '))))));
    } catch (e) {
      if (e.status !== 404) throw e;
      fill(nodes, h('p', { class: 'muted small' }, 'One node: this process runs every account. Nodes show here once several share a PostgreSQL database.'));
    }
  }

  main.append(st.el, section('Users', users), h('div', { class: 'grid' }, section('Health', health), section('Nodes', nodes)));
  const results = await Promise.allSettled([loadUsers(), loadHealth(), loadNodes()]);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) st.error(failed.reason);
}
