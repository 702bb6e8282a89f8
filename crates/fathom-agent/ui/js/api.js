// The agent's HTTP API, as the page uses it.
//
// When the listener is not on loopback the page is opened as /?token=…; the token then goes
// on every call as a bearer header rather than in API URLs.

const token = new URLSearchParams(location.search).get('token');

function headers(extra) {
  const h = { ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function check(res, what) {
  if (res.ok) return res;
  let msg = (await res.text()).trim();
  try {
    msg = JSON.parse(msg).error || msg;
  } catch {
    // Plain text answer: keep it.
  }
  throw new HttpError(res.status, `${what}: ${msg || res.statusText}`);
}

export async function getJSON(path) {
  const res = await fetch(path, { headers: headers() });
  return (await check(res, path)).json();
}

export async function postJSON(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json' }),
    body: JSON.stringify(body),
  });
  return (await check(res, path)).json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A live `POST /v1/observe` stream (NDJSON) that reconnects when the agent goes away.
 * Each (re)connection replays the request's `last` records, so `onReset` tells the owner to
 * forget what it had before they arrive again. A request the agent rejects (4xx) is not
 * retried: it will not get better.
 */
export class Observer {
  constructor(request, { onRecord, onReset, onState }) {
    this.request = request;
    this.onRecord = onRecord;
    this.onReset = onReset || (() => {});
    this.onState = onState || (() => {});
    this.abort = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.abort = new AbortController();
    this.loop(this.abort.signal);
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  async loop(signal) {
    let delay = 500;
    while (!this.stopped && !signal.aborted) {
      try {
        this.onState('connecting');
        const res = await check(
          await fetch('/v1/observe', {
            method: 'POST',
            headers: headers({ 'content-type': 'application/json' }),
            body: JSON.stringify(this.request),
            signal,
          }),
          'observe',
        );
        this.onReset();
        this.onState('live');
        delay = 500;
        await this.read(res.body, signal);
      } catch (e) {
        if (this.stopped || signal.aborted) return;
        if (e instanceof HttpError && e.status >= 400 && e.status < 500) {
          this.onState('error', e.message);
          return;
        }
      }
      if (this.stopped || signal.aborted) return;
      this.onState('down');
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  }

  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) {
          let rec = null;
          try {
            rec = JSON.parse(line);
          } catch {
            // A line we cannot read is skipped; the stream goes on.
          }
          if (rec) this.onRecord(rec);
        }
        nl = buf.indexOf('\n');
      }
    }
  }
}
