// Publishing: compose a post with a live formatting preview (read by the server's own parser),
// attach media with upload progress, pick targets across accounts and their chats, send now or
// schedule; below, the posts with each delivery's state, following post events live.

import * as api from '../api.js';
import { h, fill, field, check, status, badge, section, table, when, debounce, accountName } from '../ui.js';

const SENDABLE = new Set(['active', 'hibernated', 'flood_wait', 'reconnecting']);

export async function render(main) {
  const text = h('textarea', { name: 'text', id: 'post-text', placeholder: '<b>Bold</b>, <i>italic</i>, <a href="https://example.org">links</a>…' });
  const mode = h('select', { name: 'parse_mode', id: 'post-parse-mode' }, h('option', { value: 'html' }, 'html'), h('option', { value: 'markdown' }, 'markdown'), h('option', { value: '' }, 'plain'));
  const preview = h('div', { class: 'preview', id: 'post-preview', 'aria-live': 'polite' });
  const previewError = h('div', { id: 'preview-error' });
  const silent = h('input', { type: 'checkbox', name: 'silent' });
  const linkPreview = h('input', { type: 'checkbox', name: 'link_preview', checked: true });
  const media = [];
  const uploads = h('ul', { class: 'uploads', id: 'uploads' });
  const fileInput = h('input', { type: 'file', multiple: true, name: 'media', id: 'post-media' });
  const targetsBox = h('div', { class: 'targets', id: 'targets' }, h('p', { class: 'muted small' }, 'Loading the accounts\' chats…'));
  const now = h('input', { type: 'radio', name: 'when', value: 'now', checked: true });
  const later = h('input', { type: 'radio', name: 'when', value: 'later' });
  const at = h('input', { type: 'datetime-local', name: 'publish_at', id: 'publish-at', step: 1 });
  const st = status();
  const submit = h('button', { type: 'submit' }, 'Publish');
  const posts = h('div', { id: 'posts' });
  let accounts = [];

  // Preview: what the server's parser makes of the text, or its MARKUP_INVALID.
  const renderPreview = debounce(async () => {
    fill(previewError);
    if (!text.value) return fill(preview, h('span', { class: 'muted' }, 'The preview shows here.'));
    try {
      const p = await api.post('/formatting/preview', { text: text.value, parse_mode: mode.value || undefined });
      fill(preview, entities(p.text, p.entities));
    } catch (e) {
      fill(previewError, errorLine(e));
    }
  }, 250);
  text.addEventListener('input', renderPreview);
  mode.addEventListener('change', renderPreview);
  renderPreview();

  // Media: each file uploads at once, with its progress; a post sends the uploaded ids.
  const addFiles = (files) => {
    for (const file of files) {
      const bar = h('progress', { max: 1, value: 0, 'aria-label': 'Upload of ' + file.name });
      const state = h('span', { class: 'small' }, 'uploading');
      const item = { id: null, name: file.name };
      const remove = h('button', { type: 'button', class: 'secondary', onclick: () => {
        media.splice(media.indexOf(item), 1);
        li.remove();
      } }, 'Remove');
      const li = h('li', { 'data-file': file.name }, file.name, bar, state, remove);
      uploads.append(li);
      media.push(item);
      api.upload(file, (p) => { bar.value = p; }).then((m) => {
        item.id = m.id;
        li.dataset.mediaId = m.id;
        fill(state, badge('uploaded'), ' ' + m.kind + ', ' + Math.ceil(m.size / 1024) + ' KiB');
      }, (e) => {
        item.failed = true;
        fill(state, errorLine(e));
      });
    }
  };
  fileInput.addEventListener('change', () => {
    addFiles([...fileInput.files]);
    fileInput.value = '';
  });
  const drop = h('div', { class: 'drop' }, 'Drop photos, videos or documents here');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); addFiles([...e.dataTransfer.files]); });

  // Targets: every chat of every account that can send, as checkboxes; any other chat by hand.
  const manualAccount = h('select', { name: 'manual_account' });
  const manualChat = h('input', { name: 'manual_chat', placeholder: '@username or chat id' });
  const manual = [];
  const manualList = h('ul', { class: 'small' });
  const addManual = h('button', { type: 'button', class: 'secondary', onclick: () => {
    const chat = manualChat.value.trim();
    if (!chat || !manualAccount.value) return;
    manual.push({ account_id: Number(manualAccount.value), chat });
    manualList.append(h('li', {}, '#' + manualAccount.value + ' → ' + chat));
    manualChat.value = '';
  } }, 'Add target');

  async function loadTargets() {
    accounts = (await api.all('/telegram/accounts')).filter((a) => SENDABLE.has(a.state));
    fill(manualAccount, accounts.map((a) => h('option', { value: a.id }, '#' + a.id + ' ' + accountName(a))));
    const groups = [];
    for (let i = 0; i < accounts.length && i < 50; i += 4) {
      const slice = accounts.slice(i, i + 4);
      const lists = await Promise.allSettled(slice.map((a) => api.get('/telegram/accounts/' + a.id + '/chats' + api.query({ limit: 100 }))));
      slice.forEach((a, j) => {
        const r = lists[j];
        const chats = r.status === 'fulfilled' ? r.value.chats.filter((c) => c.type !== 'user') : [];
        groups.push(h('fieldset', {}, h('legend', {}, '#' + a.id + ' ' + accountName(a)),
          r.status === 'rejected' ? errorLine(r.reason) : chats.length ? chats.map((c) =>
            check(c.title + ' (' + c.type + (c.role ? ', ' + c.role : '') + ')', h('input', { type: 'checkbox', name: 'target', value: a.id + '|' + c.chat_id, 'data-chat-title': c.title })))
            : h('p', { class: 'small muted' }, 'No channels or groups: add a chat by hand below.')));
      });
    }
    fill(targetsBox, groups.length ? groups : h('p', { class: 'muted small' }, 'No account that can send: connect one first.'));
  }

  const composer = h('form', { id: 'compose', 'aria-label': 'Compose a post' },
    field('Text', text, 'a caption when media is attached (up to 1024 characters)'),
    field('Formatting', mode),
    h('div', {}, h('div', { class: 'small muted' }, 'Preview'), preview, previewError),
    h('div', { class: 'actions' }, check('Silent', silent), check('Link preview', linkPreview)),
    field('Media', fileInput), drop, uploads,
    h('div', {}, h('div', { class: 'small muted' }, 'Targets'), targetsBox),
    h('div', { class: 'actions' }, field('Account', manualAccount), field('Chat', manualChat), addManual),
    manualList,
    h('fieldset', {}, h('legend', {}, 'When'), check('Now', now), check('At', later), field('Publish at (your local time)', at)),
    h('div', { class: 'actions' }, submit),
    st.el,
  );
  // Enter in the chat field adds the target; it must not publish.
  manualChat.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      addManual.click();
    }
  });
  at.addEventListener('focus', () => { later.checked = true; });
  composer.addEventListener('submit', async (e) => {
    e.preventDefault();
    st.clear();
    submit.disabled = true;
    try {
      if (media.some((m) => !m.id && !m.failed)) throw new api.ApiError(0, 'UPLOAD_IN_PROGRESS', 'wait for the uploads to finish');
      if (media.some((m) => m.failed)) throw new api.ApiError(0, 'UPLOAD_FAILED', 'remove the media that failed to upload');
      const targets = [...composer.querySelectorAll('input[name=target]:checked')].map((c) => {
        const [account_id, chat] = c.value.split('|');
        return { account_id: Number(account_id), chat };
      }).concat(manual);
      const body = {
        targets,
        text: text.value || undefined,
        parse_mode: text.value && mode.value ? mode.value : undefined,
        media: media.length ? media.map((m) => m.id) : undefined,
        silent: silent.checked,
        link_preview: linkPreview.checked,
      };
      if (later.checked) {
        if (!at.value) throw new api.ApiError(0, 'PUBLISH_AT_MISSING', 'choose when to publish');
        body.publish_at = new Date(at.value).toISOString();
      }
      const p = await api.post('/posts', body);
      st.ok('Post ' + p.id + ' is ' + p.state + ' for ' + p.deliveries.length + ' target(s).');
      await loadPosts();
    } catch (err) {
      st.error(err);
    } finally {
      submit.disabled = false;
    }
  });

  let postList = [];
  async function loadPosts() {
    const r = await api.get('/posts' + api.query({ limit: 50 }));
    postList = r.posts;
    fill(posts, postList.length ? table(['Publish at', 'State', 'Text', 'Deliveries', ''], postList.map(postRow)) : h('p', { class: 'muted small' }, 'No posts yet.'));
  }
  function postRow(p) {
    const cancel = p.state === 'scheduled' ? h('button', { type: 'button', class: 'danger', onclick: async () => {
      try {
        await api.del('/posts/' + p.id);
        await loadPosts();
      } catch (e) {
        st.error(e);
      }
    } }, 'Cancel') : null;
    return h('tr', { 'data-post-id': p.id },
      h('td', { class: 'small' }, when(p.publish_at)),
      h('td', { class: 'post-state' }, badge(p.state)),
      h('td', {}, (p.text || '').slice(0, 120), p.media.length ? h('span', { class: 'small muted' }, ' + ' + p.media.length + ' media') : null),
      h('td', {}, h('ul', { class: 'deliveries' }, p.deliveries.map((d) => h('li', { 'data-state': d.state }, '#' + d.account_id + ' → ' + d.chat + ' ', badge(d.state),
        d.message_ids ? h('span', { class: 'small muted' }, ' message ' + d.message_ids.join(', ')) : null,
        d.error ? [' ', h('code', {}, d.error.code), ' ', h('span', { class: 'small' }, d.error.message)] : null,
        d.next_attempt_at && d.state === 'pending' ? h('span', { class: 'small muted' }, ' next try ' + when(d.next_attempt_at)) : null)))),
      h('td', {}, cancel));
  }

  main.append(
    h('h1', {}, 'Publish'),
    section('Compose', composer),
    section('Posts', posts),
  );
  await Promise.allSettled([loadTargets().catch((e) => fill(targetsBox, errorLine(e))), loadPosts()]);

  const again = debounce(() => loadPosts().catch((e) => st.error(e)), 300);
  const unfollow = api.follow({ types: 'post.published,post.delivery_succeeded,post.delivery_failed' }, again);
  // A post going from scheduled to publishing makes no event: look again while one is due.
  const poll = setInterval(() => {
    if (postList.some((p) => p.state === 'scheduled' || p.state === 'publishing')) again();
  }, 2000);
  return () => {
    unfollow();
    clearInterval(poll);
  };
}

function errorLine(e) {
  return h('span', { class: 'error', role: 'alert', 'data-code': e.code }, h('code', {}, e.code), ' ', e.message);
}

/** The text with its entities as elements; offsets are UTF-16 units, as JS strings count. */
export function entities(text, list) {
  const sorted = [...list].sort((a, b) => a.offset - b.offset || b.length - a.length);
  let i = 0;
  const build = (start, end) => {
    const out = [];
    let pos = start;
    while (i < sorted.length && sorted[i].offset < end) {
      const e = sorted[i++];
      if (e.offset < pos) continue; // overlapping rather than nested: shown as plain text
      if (e.offset > pos) out.push(text.slice(pos, e.offset));
      const stop = Math.min(e.offset + e.length, end);
      const el = element(e);
      el.append(...build(e.offset, stop));
      out.push(el);
      pos = stop;
    }
    if (pos < end) out.push(text.slice(pos, end));
    return out;
  };
  return build(0, text.length);
}

function element(e) {
  const link = (href) => {
    const a = h('a', { rel: 'noopener noreferrer', target: '_blank' });
    if (/^(https?:|tg:)/i.test(href)) a.setAttribute('href', href);
    return a;
  };
  switch (e.type) {
    case 'bold': return h('strong', { 'data-entity': 'bold' });
    case 'italic': return h('em', { 'data-entity': 'italic' });
    case 'underline': return h('u', { 'data-entity': 'underline' });
    case 'strikethrough': return h('s', { 'data-entity': 'strikethrough' });
    case 'spoiler': return h('span', { class: 'spoiler', 'data-entity': 'spoiler' });
    case 'code': return h('code', { 'data-entity': 'code' });
    case 'pre': return h('pre', { 'data-entity': 'pre', 'data-language': e.language || '' });
    case 'text_link': { const a = link(e.url || ''); a.dataset.entity = 'text_link'; return a; }
    case 'url': return h('span', { 'data-entity': 'url' });
    case 'text_mention': { const a = link('tg://user?id=' + e.user_id); a.dataset.entity = 'text_mention'; return a; }
    case 'blockquote': return h('blockquote', { 'data-entity': 'blockquote' });
    case 'expandable_blockquote': return h('blockquote', { 'data-entity': 'expandable_blockquote' });
    default: return h('span', { 'data-entity': e.type });
  }
}
