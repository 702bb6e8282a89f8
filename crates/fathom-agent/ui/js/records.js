// One-line summaries of records for tables. Known types get their own columns' worth of
// meaning; any other type (the agent grows new ones) still shows its endpoints and its
// scalar fields, so nothing it sends is invisible.

import { fmtBytes, fmtCount, fmtMs, podOf, protoPort, truncate } from './dom.js';

const KNOWN = new Set(['flow', 'drop', 'l7', 'policy-verdict', 'lost']);

export function isKnown(rec) {
  return KNOWN.has(rec.type);
}

function procLabel(p) {
  return p ? `${p.comm}[${p.pid}]` : '';
}

const L7_PROTOCOLS = ['http', 'http2', 'grpc', 'dns', 'redis', 'kafka', 'postgres', 'mysql', 'tls'];

/**
 * [protocol, detail] of an L7 record: the detail object sits under the protocol's name, next
 * to the exchange's common fields. An unknown protocol gives ['l7', {}].
 */
export function l7Detail(r) {
  for (const p of L7_PROTOCOLS) {
    if (r[p] && typeof r[p] === 'object') return [p, r[p]];
  }
  return ['l7', {}];
}

/** What an L7 exchange was about, per protocol. */
export function l7What(rec) {
  const [proto, r] = l7Detail(rec);
  switch (proto) {
    case 'http':
    case 'http2':
      return [r.method, `${r.host || ''}${r.path || ''}`].filter(Boolean).join(' ');
    case 'grpc':
      return [r.service, r.method].filter(Boolean).join('/');
    case 'dns':
      return [r.qtype, r.qname].filter(Boolean).join(' ');
    case 'redis':
      return [r.command, r.key].filter(Boolean).join(' ');
    case 'kafka':
      return [r.api_name, (r.topics || []).join(',')].filter(Boolean).join(' ');
    case 'postgres':
    case 'mysql':
      return r.statement || r.command || r.kind || '';
    case 'tls':
      return r.sni ? `SNI ${r.sni}` : r.version || '';
    default:
      return '';
  }
}

/** A policy verdict's action, whatever shape the record gives it. */
export function verdictAction(r) {
  const v = r.action || (typeof r.verdict === 'string' ? r.verdict : r.verdict && r.verdict.action);
  return v ? String(v).toLowerCase() : 'unknown';
}

function scalars(r) {
  const skip = new Set(['type', 'time', 'source', 'destination', 'node']);
  return Object.entries(r)
    .filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== 'object')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/**
 * {kind, tag, src, dst, proto, info, pkts, bytes, process} for a table row; `tag` is the CSS
 * class of the kind badge.
 */
export function summarize(r) {
  const base = { kind: r.type, tag: '', src: r.source, dst: r.destination, proto: '', info: '', pkts: '', bytes: '', process: '' };
  switch (r.type) {
    case 'flow': {
      const t = r.traffic || {};
      const l4 = r.l4 || {};
      const rst = r.end_reason === 'rst';
      return {
        ...base,
        kind: r.end_reason ? `${r.event}:${r.end_reason}` : r.event,
        tag: rst ? 'rst' : r.event,
        proto: protoPort(l4.protocol, r.destination),
        info: (l4.tcp_flags || []).join(',') || (l4.icmp_type !== null && l4.icmp_type !== undefined ? `icmp type ${l4.icmp_type}` : ''),
        pkts: `${fmtCount(t.packets_out)}/${fmtCount(t.packets_in)}`,
        bytes: `${fmtBytes(t.bytes_out)}/${fmtBytes(t.bytes_in)}`,
        process: procLabel(r.process) || (r.destination_process ? `← ${procLabel(r.destination_process)}` : ''),
      };
    }
    case 'drop': {
      const n = 1 + (r.suppressed || 0);
      return {
        ...base,
        kind: 'drop',
        tag: 'drop',
        proto: protoPort(r.protocol, r.destination),
        info: n > 1 ? `${r.reason} ×${n}` : r.reason,
        bytes: fmtBytes(r.length),
        process: r.location || '',
      };
    }
    case 'l7': {
      const [proto] = l7Detail(r);
      const what = l7What(r);
      const status = r.status ? `→ ${r.status}` : '';
      const lat = r.latency_ns !== null && r.latency_ns !== undefined ? fmtMs(r.latency_ns / 1e6) : '';
      return {
        ...base,
        kind: proto,
        tag: r.error ? 'err' : 'l7',
        proto,
        info: [truncate(what, 80), status, lat].filter(Boolean).join(' '),
        bytes: `${fmtBytes(r.request_bytes)}/${fmtBytes(r.response_bytes)}`,
        process: procLabel(r.process),
      };
    }
    case 'policy-verdict': {
      const action = verdictAction(r);
      return { ...base, kind: action, tag: action, proto: protoPort(r.protocol || (r.l4 && r.l4.protocol), r.destination), info: policyNames(r) };
    }
    default:
      return { ...base, kind: r.type || '?', tag: '', info: truncate(scalars(r), 160) };
  }
}

/** The policies a verdict names, as "ns/name" joined. */
export function policyNames(r) {
  const refs = r.policies || (r.verdict && r.verdict.policies) || [];
  const names = refs.map((p) => (typeof p === 'string' ? p : [p.namespace, p.name].filter(Boolean).join('/')));
  return names.join(', ') || r.policy || (r.verdict && r.verdict.reason) || r.reason || '';
}

/** Pod or address of each side, for data attributes and quick filters. */
export function sideName(ep) {
  return podOf(ep) || (ep && ep.ip) || '';
}
