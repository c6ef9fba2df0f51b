// Webhooks: create one (its secret is shown once), enable or disable, rotate the secret, send a
// test ping, replay from an event id, and read its delivery log.

import * as api from '../api.js';
import { h, fill, field, check, form, status, badge, section, table, when, accountName } from '../ui.js';

const TYPES = [
  'message.received', 'message.edited', 'message.deleted', 'account.state_changed', 'account.flood_wait',
  'post.delivery_succeeded', 'post.delivery_failed', 'post.published', 'webhook.disabled', 'ping',
];

export async function render(main) {
  const st = status();
  const list = h('div', { id: 'webhooks' });
  const detail = h('div', { id: 'webhook-detail' });
  const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://example.org/hooks/telegram' });
  const description = h('input', { name: 'description' });
  const allTypes = h('input', { type: 'checkbox', name: 'all_types', checked: true });
  const typeBoxes = TYPES.map((t) => h('input', { type: 'checkbox', name: 'type', value: t }));
  const accountSelect = h('select', { name: 'account_ids', multiple: true, size: 4 });
  const secretBox = h('div', { id: 'webhook-secret' });

  const accounts = await api.all('/telegram/accounts').catch(() => []);
  fill(accountSelect, accounts.map((a) => h('option', { value: a.id }, '#' + a.id + ' ' + accountName(a))));

  const showSecret = (secret, what) => fill(secretBox, h('div', { class: 'success', role: 'status' }, what + ' — copy it now, it is not shown again: ', h('span', { class: 'secret' }, secret)));

  const create = form({ id: 'create-webhook', 'aria-label': 'New webhook' }, [
    field('URL', url),
    field('Description', description),
    h('fieldset', {}, h('legend', {}, 'Events'), check('all (*)', allTypes), typeBoxes.map((b) => check(b.value, b))),
    field('Only these accounts', accountSelect, 'none selected: all of yours'),
  ], 'Create webhook', async () => {
    const events = allTypes.checked ? ['*'] : typeBoxes.filter((b) => b.checked).map((b) => b.value);
    const ids = [...accountSelect.selectedOptions].map((o) => Number(o.value));
    const r = await api.post('/webhooks', { url: url.value.trim(), events, account_ids: ids.length ? ids : undefined, description: description.value || undefined });
    showSecret(r.secret, 'Webhook created; its signing secret');
    await load();
    await open(r.id);
  });

  async function load() {
    const r = await api.get('/webhooks');
    fill(list, r.webhooks.length ? table(['URL', 'Events', 'State', ''], r.webhooks.map((w) => h('tr', { 'data-webhook-id': w.id },
      h('td', {}, w.url, w.description ? h('div', { class: 'small muted' }, w.description) : null),
      h('td', { class: 'small' }, w.events.join(', '), w.account_ids ? h('div', { class: 'muted' }, 'accounts ' + w.account_ids.join(', ')) : null),
      h('td', {}, badge(w.enabled ? 'enabled' : 'disabled'), w.disabled_reason ? h('div', { class: 'small' }, w.disabled_reason) : null, w.failing_since ? h('div', { class: 'small muted' }, 'failing since ' + when(w.failing_since)) : null),
      h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => open(w.id) }, 'Open')))))
      : h('p', { class: 'muted small' }, 'No webhooks yet.'));
  }

  async function open(id) {
    const path = '/webhooks/' + encodeURIComponent(id);
    const w = await api.get(path);
    const dst = status();
    const deliveries = h('div', { id: 'deliveries' });
    const loadDeliveries = async () => {
      const r = await api.get(path + '/deliveries' + api.query({ limit: 50 }));
      fill(deliveries, r.deliveries.length ? table(['At', 'Event', 'Attempt', 'Outcome', 'Status', 'Latency', 'Next attempt'], r.deliveries.map((d) => h('tr', {},
        h('td', { class: 'small' }, when(d.at)), h('td', {}, String(d.event_id)), h('td', {}, String(d.attempt)),
        h('td', {}, badge(d.outcome), d.error ? h('div', { class: 'small' }, d.error) : null),
        h('td', {}, d.status == null ? '' : String(d.status)), h('td', {}, d.latency_ms + ' ms'), h('td', { class: 'small' }, when(d.next_attempt_at)))))
        : h('p', { class: 'muted small' }, 'No delivery attempts yet.'));
    };
    const run = (label, fn) => h('button', { type: 'button', class: 'secondary', onclick: async () => {
      dst.clear();
      try {
        await fn();
        await Promise.all([load(), loadDeliveries()]);
      } catch (e) {
        dst.error(e);
      }
    } }, label);
    const since = h('input', { type: 'number', name: 'since_event_id', min: 0, required: true });
    const replay = form({ class: 'inline', 'aria-label': 'Replay' }, [field('Replay from event id', since)], 'Replay', async (s) => {
      const r = await api.post(path + '/replay', { since_event_id: Number(since.value) });
      s.ok('Replaying from event ' + r.since_event_id + '.');
      await loadDeliveries();
    });
    fill(detail, section('Webhook ' + w.url,
      h('div', { class: 'actions' },
        run(w.enabled ? 'Disable' : 'Enable', () => api.patch(path, { enabled: !w.enabled }).then(() => open(id))),
        run('Send a test ping', async () => dst.ok('Ping queued as event ' + (await api.post(path + '/test', {})).event_id + '.')),
        run('Rotate secret', async () => showSecret((await api.post(path + '/rotate-secret', {})).secret, 'New signing secret (the old one still signs for a while)')),
        run('Refresh', async () => {}),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!confirm('Delete this webhook?')) return;
          try {
            await api.del(path);
            fill(detail);
            await load();
          } catch (e) {
            dst.error(e);
          }
        } }, 'Delete')),
      dst.el, replay, h('h2', {}, 'Deliveries'), deliveries));
    await loadDeliveries();
  }

  main.append(h('h1', {}, 'Webhooks'), st.el, h('div', { class: 'grid' }, section('New webhook', create, secretBox), section('Endpoints', list)), detail);
  await load().catch((e) => st.error(e));
}
