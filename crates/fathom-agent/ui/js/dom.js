// DOM and formatting helpers.
//
// Everything the agent reports (pod names, labels, HTTP paths, DNS names) is chosen by whoever
// sends traffic. It only ever enters the page as text nodes or attribute values built here,
// never as markup, so a crafted name cannot inject script (the page's CSP is the backstop).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('td', {class: 'num'}, 'text', childNode, …). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Key/value pairs as a definition list, skipping empty values. */
export function kv(pairs) {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    dl.append(h('dt', null, k), h('dd', null, v));
  }
  return dl;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtCount(n) {
  if (n === undefined || n === null) return '–';
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)}M`;
}

/** Events per second as the most readable of /s, /min, /h. */
export function fmtRate(perSec) {
  if (!perSec) return '0/s';
  if (perSec >= 1) return `${perSec.toFixed(perSec < 10 ? 1 : 0)}/s`;
  const perMin = perSec * 60;
  if (perMin >= 1) return `${perMin.toFixed(perMin < 10 ? 1 : 0)}/min`;
  return `${(perMin * 60).toFixed(1)}/h`;
}

export function fmtUs(us) {
  if (us === undefined || us === null) return '–';
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function fmtMs(ms) {
  if (ms === undefined || ms === null) return '–';
  return fmtUs(Math.round(ms * 1000));
}

export function fmtPct(x) {
  if (!x) return '0%';
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

/** Seconds as "3d 4h", "5m 2s". */
export function fmtDuration(sec) {
  const s = Math.max(0, Math.floor(sec || 0));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** Local wall time with milliseconds: records arrive many per second. */
export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || '';
  const hms = d.toLocaleTimeString([], { hour12: false });
  return `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function fmtDateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || '';
  return `${d.toLocaleDateString()} ${fmtTime(iso)}`;
}

/** `namespace/pod` of an endpoint, or null for a plain address. */
export function podOf(ep) {
  if (!ep || !ep.pod) return null;
  return ep.namespace ? `${ep.namespace}/${ep.pod}` : ep.pod;
}

export function epAddr(ep) {
  if (!ep || !ep.ip) return '';
  const ip = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip;
  return ep.port !== undefined && ep.port !== null ? `${ip}:${ep.port}` : ip;
}

/** A table cell's view of an endpoint: pod name with its address, or the address alone. */
export function epNode(ep) {
  if (!ep) return h('span', { class: 'muted' }, '–');
  const pod = podOf(ep);
  if (!pod) return h('span', { class: 'ep mono' }, epAddr(ep));
  return h('span', { class: 'ep', title: epAddr(ep) }, pod, h('span', { class: 'ip' }, epAddr(ep)));
}

/** A stable hue per namespace so that a namespace keeps its colour across refreshes. */
export function hue(name) {
  let x = 2166136261;
  for (const c of name || '') x = Math.imul(x ^ c.charCodeAt(0), 16777619);
  return Math.abs(x) % 360;
}

/** An L4 protocol as records carry it: a name, or `{"other": N}` for the rest. */
export function protoName(p) {
  if (p === undefined || p === null) return '';
  if (typeof p === 'object') return 'other' in p ? `ip-proto-${p.other}` : JSON.stringify(p);
  return String(p);
}

/** `tcp/80`, or the protocol alone when ports mean nothing to it. */
export function protoPort(p, dst) {
  const name = protoName(p);
  if (['tcp', 'udp', 'sctp'].includes(name) && dst && dst.port !== undefined && dst.port !== null) return `${name}/${dst.port}`;
  return name;
}

export function truncate(str, n) {
  const t = String(str ?? '');
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}
