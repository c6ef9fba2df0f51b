// DOM helpers. Every text reaches the page as a text node (never as markup), so nothing an
// account, a chat or a message holds can become script.

let ids = 0;

/**
 * `h('button', {class: 'x', onclick: fn, disabled: true}, 'text', child…)`. Attributes named
 * `on…` become listeners; `value`, `checked`, `disabled`, `hidden`, `selected` are properties.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled field: the label wraps the control, so every input has an accessible name. */
export function field(label, control, hint) {
  if (!control.id) control.id = 'f' + ++ids;
  return h('label', { for: control.id }, label, control, hint ? h('span', { class: 'small muted' }, hint) : null);
}

export function check(label, control) {
  return h('label', { class: 'check' }, control, label);
}

const TONE = {
  active: 'ok', published: 'ok', uploaded: 'ok', enabled: 'ok', sent: 'ok', succeeded: 'ok', delivered: 'ok', ok: 'ok',
  awaiting_code: 'busy', awaiting_password: 'busy', awaiting_qr: 'busy', new: 'busy',
  scheduled: 'busy', publishing: 'busy', sending: 'busy', pending: 'busy', reconnecting: 'warn',
  flood_wait: 'warn', hibernated: 'idle', partially_failed: 'warn', retrying: 'warn',
  unauthorized: 'bad', banned: 'bad', quarantined: 'bad', failed: 'bad', dead: 'bad',
  dead_lettered: 'bad', disabled: 'bad', down: 'bad', degraded: 'warn',
};

/** A state as text and colour: `data-state` carries it for whoever reads the page. */
/** The states of an account that holds a working authorization (`AccountState::is_authorized`). */
export const AUTHORIZED = new Set(['active', 'reconnecting', 'flood_wait', 'hibernated']);

export function badge(state) {
  return h('span', { class: 'badge ' + (TONE[state] || 'idle'), 'data-state': state }, state.replace(/_/g, ' '));
}

/** An API error as the API stated it: its code, its message, and each bad field. */
export function errorBox(err) {
  if (!err) return null;
  const code = err.code || 'ERROR';
  return h(
    'div',
    { class: 'error', role: 'alert', 'data-code': code },
    h('code', {}, code),
    ' ',
    err.message || String(err),
    err.retryAfter ? ' (retry after ' + err.retryAfter + ' s)' : null,
    err.fields && err.fields.length
      ? h('ul', {}, err.fields.map((f) => h('li', {}, h('code', {}, f.field), ': ', f.message)))
      : null,
  );
}

/** A place on the page where one error (or a success line) shows, replaced by the next. */
export function status() {
  const el = h('div', { class: 'status', 'aria-live': 'polite' });
  return {
    el,
    error(e) {
      console.warn(e);
      fill(el, errorBox(e));
    },
    ok(text) {
      fill(el, h('div', { class: 'success', role: 'status' }, text));
    },
    clear() {
      fill(el);
    },
  };
}

/**
 * A form whose submit runs `action(formValues)`; its button stays disabled meanwhile, and an
 * error shows under it as the API stated it.
 */
export function form(attrs, fields, submitLabel, action) {
  const st = status();
  const button = h('button', { type: 'submit' }, submitLabel);
  const el = h('form', attrs, fields, h('div', { class: 'actions' }, button), st.el);
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    st.clear();
    try {
      await action(st);
    } catch (err) {
      st.error(err);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

export function when(ts) {
  if (!ts) return '';
  const d = typeof ts === 'number' ? new Date(ts * 1000) : new Date(ts);
  return d.toLocaleString();
}

export function table(headers, rows, attrs) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      attrs || {},
      // A header is its text, or [text, class] for a column hidden on narrow screens.
      h('thead', {}, h('tr', {}, headers.map((t) => Array.isArray(t) ? h('th', { scope: 'col', class: t[1] }, t[0]) : h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows),
    ),
  );
}

export function section(title, ...children) {
  return h('section', {}, h('h2', {}, title), children);
}

/** Runs `fn` at most once per `ms`, trailing. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function accountName(a) {
  return a.label || a.username && '@' + a.username || a.phone || 'account ' + a.id;
}
