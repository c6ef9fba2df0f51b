// The console's one door to tgfleet: the public REST API and its SSE stream, called with the
// signed-in user's bearer token exactly as a script would call them. No other route exists for
// the console, so whatever it shows or does, a script can show or do.

const BASE = '/api/v1';
const STORE = 'tgfleet.console.session';

/** An answer that was not 2xx, as the API stated it: `{error:{code,message,fields?}}`. */
export class ApiError extends Error {
  constructor(status, code, message, fields, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
    this.retryAfter = retryAfter;
  }
}

// Tokens live for the tab only (sessionStorage): closing it signs out, and no other site can
// read them (the API takes them from the Authorization header, never from a cookie).
let session = readSession();
const signOutListeners = new Set();

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || 'null');
  } catch {
    return null;
  }
}

export function signedIn() {
  return session !== null;
}

export function refreshToken() {
  return session && session.refresh_token;
}

export function setSession(tokens) {
  session = { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
  sessionStorage.setItem(STORE, JSON.stringify(session));
}

export function clearSession() {
  session = null;
  sessionStorage.removeItem(STORE);
  for (const fn of signOutListeners) fn();
}

export function onSignedOut(fn) {
  signOutListeners.add(fn);
}

let refreshing = null;

/** One refresh at a time: concurrent 401s wait for the same new pair. */
function refresh() {
  if (!refreshing) {
    const token = session && session.refresh_token;
    refreshing = (async () => {
      if (!token) return false;
      const r = await fetch(BASE + '/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: token }),
      }).catch(() => null);
      if (!r || !r.ok) {
        clearSession();
        return false;
      }
      setSession(await r.json());
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function errorOf(r) {
  const retryAfter = r.headers.get('retry-after');
  try {
    const body = await r.json();
    if (body && body.error) {
      return new ApiError(r.status, body.error.code, body.error.message, body.error.fields, retryAfter);
    }
  } catch {
    // not the API's error format (a proxy in between, say): say what HTTP said
  }
  return new ApiError(r.status, 'HTTP_' + r.status, r.statusText || 'the request failed', [], retryAfter);
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  if (session) headers.authorization = 'Bearer ' + session.access_token;
  return headers;
}

/**
 * `method path` with a JSON `body` (or a Blob/FormData as is); resolves to the parsed answer
 * (null for 204), or to the Response itself with `raw`. Rejects with an ApiError.
 */
export async function request(method, path, { body, raw = false, headers = {} } = {}) {
  const send = () => {
    const h = authHeaders(headers);
    let payload = body;
    if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
      h['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    return fetch(BASE + path, { method, headers: h, body: payload });
  };
  let r;
  try {
    r = await send();
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'tgfleet did not answer: ' + e.message);
  }
  if (r.status === 401 && session && !path.startsWith('/auth/') && (await refresh())) {
    r = await send();
  }
  if (!r.ok) throw await errorOf(r);
  if (raw) return r;
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });
export const del = (path) => request('DELETE', path);

/** `?k=v&…` of the defined values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/**
 * Every item of a cursor-paged list (`items`/`next_cursor`), up to `max`; `out.more` says the
 * list goes on past it, so a page can say it shows the first `max`.
 */
export async function all(path, params = {}, max = 5000) {
  const out = [];
  let cursor;
  do {
    const page = await get(path + query(Object.assign({}, params, { limit: 500, cursor })));
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  out.more = Boolean(cursor);
  return out;
}

/** An image route (the QR code) as an object URL the page can show under its CSP. */
export async function blobUrl(path) {
  const r = await request('GET', path, { raw: true });
  return URL.createObjectURL(await r.blob());
}

/**
 * Uploads a file to the media library as the raw body, reporting progress (fetch has no
 * upload progress; XMLHttpRequest does). Resolves to the media item.
 */
export function upload(file, onProgress) {
  const once = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', BASE + '/media' + query({ file_name: file.name }));
      const h = authHeaders({});
      for (const [k, v] of Object.entries(h)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      };
      xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'the upload was cut off'));
      xhr.onload = () => {
        const r = new Response(xhr.responseText, {
          status: xhr.status,
          headers: { 'retry-after': xhr.getResponseHeader('retry-after') || '' },
        });
        resolve(r);
      };
      xhr.send(file);
    });
  return (async () => {
    let r = await once();
    if (r.status === 401 && session && (await refresh())) r = await once();
    if (!r.ok) throw await errorOf(r);
    // No onProgress(1) here: the browser reports the end of the body itself (XHR's last upload
    // `progress` event), so a bar at 1 shows what was sent, not that an answer came.
    return r.json();
  })();
}

/**
 * Follows `GET /events` (Server-Sent Events) with the Authorization header — which the
 * browser's EventSource cannot send — by reading the response body as it arrives. Reconnects
 * with backoff and resumes with `Last-Event-ID`, so no event is missed across a dropped
 * connection. Returns a function that stops it.
 */
export function follow(params, onEvent, onStatus = () => {}) {
  const stop = new AbortController();
  let lastId = null;
  let delay = 500;
  (async () => {
    while (!stop.signal.aborted) {
      try {
        let r = await fetch(BASE + '/events' + query(params), {
          headers: authHeaders(lastId === null ? {} : { 'last-event-id': String(lastId) }),
          signal: stop.signal,
        });
        if (r.status === 401 && session && (await refresh())) continue;
        if (!r.ok) throw await errorOf(r);
        onStatus('live');
        delay = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        let event = { data: [] };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let nl;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).replace(/\r$/, '');
            buffer = buffer.slice(nl + 1);
            if (line === '') {
              if (event.data.length) {
                if (event.id) lastId = event.id;
                try {
                  onEvent(JSON.parse(event.data.join('\n')));
                } catch (e) {
                  console.error('event handler failed', e);
                }
              }
              event = { data: [] };
            } else if (!line.startsWith(':')) {
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'data') event.data.push(val);
              else if (field === 'id') event.id = val;
            }
          }
        }
      } catch (e) {
        if (stop.signal.aborted) return;
        onStatus('reconnecting', e);
      }
      if (stop.signal.aborted) return;
      onStatus('reconnecting');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return () => stop.abort();
}
