// The detail drawer: every field of one record, laid out for reading. Flows get both sides
// with their processes, per-direction counters and the TCP stack's figures; other records
// get their own sections; any record gets its raw JSON.

import {
  h, kv, fmtBytes, fmtCount, fmtUs, fmtMs, fmtDateTime, fmtTime, podOf, epAddr, protoName,
} from './dom.js';
import { l7Detail, l7What, policyNames, verdictAction, summarize } from './records.js';

const drawer = () => document.getElementById('detail');

function section(title, ...body) {
  return h('section', null, h('h3', null, title), ...body);
}

function labels(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return null;
  return h('div', { class: 'labels' }, entries.map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`)));
}

function processKv(p) {
  if (!p) return h('p', { class: 'muted' }, 'not on this node');
  return kv([
    ['command', h('strong', { class: 'mono', 'data-field': 'comm' }, p.comm)],
    ['pid / tid', [p.pid, p.tid].filter((x) => x !== null && x !== undefined).join(' / ')],
    ['ppid', p.ppid],
    ['executable', p.exe ? h('span', { class: 'mono' }, p.exe) : null],
    ['cgroup', p.cgroup_id],
    ['container', p.container_id ? h('span', { class: 'mono' }, p.container_id.slice(0, 12)) : null],
  ]);
}

function side(title, ep, proc) {
  return h(
    'div',
    { class: 'side' },
    h('h4', null, title),
    ep
      ? kv([
          ['pod', podOf(ep) || h('span', { class: 'muted' }, 'none (not a known pod)')],
          ['address', h('span', { class: 'mono' }, epAddr(ep))],
        ])
      : h('p', { class: 'muted' }, 'unknown'),
    ep ? labels(ep.labels) : null,
    proc !== undefined ? h('h4', null, 'Process') : null,
    proc !== undefined ? processKv(proc) : null,
  );
}

function flowSections(r, related) {
  const t = r.traffic || {};
  const l4 = r.l4 || {};
  const tcp = r.tcp || {};
  const dur = (Date.parse(r.last_seen) - Date.parse(r.first_seen)) / 1000;
  const row = (k, a, b, f) => h('tr', null, h('td', null, k), h('td', null, f(a)), h('td', null, f(b)));
  const out = [
    section(
      'Flow',
      kv([
        ['event', r.end_reason ? `${r.event} (${r.end_reason})` : r.event],
        ['flow id', h('span', { class: 'mono' }, r.flow_id)],
        ['protocol', protoName(l4.protocol)],
        ['first seen', fmtDateTime(r.first_seen)],
        ['last seen', fmtDateTime(r.last_seen)],
        ['duration', Number.isFinite(dur) ? `${dur.toFixed(3)} s` : null],
        ['interface', r.interface ? `${r.interface.name || '?'} (#${r.interface.ifindex})` : null],
        ['node', r.node],
      ]),
    ),
    h('div', { class: 'sides' }, side('Source (client)', r.source, r.process), side('Destination (server)', r.destination, r.destination_process)),
    section(
      'Traffic',
      h(
        'table',
        { class: 'dir-table' },
        h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'out (src → dst)'), h('th', null, 'in (dst → src)'))),
        h(
          'tbody',
          null,
          row('packets', t.packets_out, t.packets_in, fmtCount),
          row('bytes', t.bytes_out, t.bytes_in, fmtBytes),
          row('payload', t.payload_bytes_out, t.payload_bytes_in, fmtBytes),
          l4.tcp_flags_out || l4.tcp_flags_in
            ? row('TCP flags', l4.tcp_flags_out, l4.tcp_flags_in, (f) => (f || []).join(',') || '–')
            : null,
        ),
      ),
    ),
  ];
  if (l4.protocol === 'tcp') {
    out.push(
      section(
        'TCP',
        kv([
          ['handshake', fmtUs(tcp.handshake_us)],
          ['smoothed RTT', fmtUs(tcp.srtt_us)],
          ['retransmits', tcp.retransmits ?? '–'],
          ['bytes acked', tcp.bytes_acked !== null && tcp.bytes_acked !== undefined ? fmtBytes(tcp.bytes_acked) : '–'],
          ['bytes received', tcp.bytes_received !== null && tcp.bytes_received !== undefined ? fmtBytes(tcp.bytes_received) : '–'],
        ]),
      ),
    );
  } else if (l4.icmp_type !== null && l4.icmp_type !== undefined) {
    out.push(section('ICMP', kv([['type', l4.icmp_type], ['code', l4.icmp_code]])));
  }
  if (related.length > 1) out.push(timeline(related));
  return out;
}

function timeline(related) {
  return section(
    'Records of this flow',
    h(
      'ul',
      { class: 'timeline' },
      related.map((x) => {
        const s = summarize(x);
        return h('li', null, h('span', { class: 'mono muted' }, fmtTime(x.time)), h('span', { class: `tag ${s.tag}` }, s.kind), s.info, s.bytes ? h('span', { class: 'muted' }, s.bytes) : null);
      }),
    ),
  );
}

function dropSections(r) {
  return [
    section(
      'Drop',
      kv([
        ['reason', h('strong', null, `${r.reason} (${r.reason_code})`)],
        ['location', h('span', { class: 'mono' }, r.location)],
        ['protocol', protoName(r.protocol)],
        ['length', fmtBytes(r.length)],
        ['suppressed', r.suppressed ? `${r.suppressed} more drops of this reason not reported one by one` : null],
        ['interface', r.interface ? `${r.interface.name || '?'} (#${r.interface.ifindex})` : null],
        ['netns', r.netns],
        ['node', r.node],
      ]),
    ),
    h('div', { class: 'sides' }, side('Source', r.source), side('Destination', r.destination)),
  ];
}

function l7Sections(r, related) {
  const [proto, fields] = l7Detail(r);
  const detail = Object.entries(fields).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length));
  const out = [
    section(
      proto.toUpperCase(),
      kv([
        ['exchange', l7What(r)],
        ['status', r.status ? h('span', { class: r.error ? 'error' : '' }, r.status) : null],
        ['latency', r.latency_ns !== null && r.latency_ns !== undefined ? fmtMs(r.latency_ns / 1e6) : null],
        ['request', fmtBytes(r.request_bytes)],
        ['response', fmtBytes(r.response_bytes)],
        ['kind', r.kind],
        ['TLS plaintext', r.tls_plaintext ? 'yes (read from the TLS library)' : null],
        ['flow id', r.flow_id ? h('span', { class: 'mono' }, r.flow_id) : null],
      ]),
    ),
    h('div', { class: 'sides' }, side('Client', r.source, r.process), side('Server', r.destination)),
  ];
  if (detail.length) out.push(section('Protocol fields', kv(detail.map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]))));
  if (related.length > 1) out.push(timeline(related));
  return out;
}

function verdictSections(r) {
  return [
    section('Verdict', kv([
      ['action', h('span', { class: `tag ${verdictAction(r)}` }, verdictAction(r))],
      ['direction', r.direction || (r.verdict && r.verdict.direction)],
      ['policy', policyNames(r)],
    ])),
    h('div', { class: 'sides' }, side('Source', r.source), side('Destination', r.destination)),
  ];
}

function title(r) {
  const s = summarize(r);
  const a = podOf(r.source) || epAddr(r.source) || '?';
  const b = podOf(r.destination) || epAddr(r.destination) || '?';
  return r.source || r.destination ? `${s.kind} · ${a} → ${b}` : `${r.type} record`;
}

/** Open the drawer on `rec`; `related` are other records of the same flow, oldest first. */
export function openDetail(rec, related = []) {
  const body = document.getElementById('detail-body');
  document.getElementById('detail-title').textContent = title(rec);
  let parts;
  switch (rec.type) {
    case 'flow': parts = flowSections(rec, related); break;
    case 'drop': parts = dropSections(rec); break;
    case 'l7': parts = l7Sections(rec, related); break;
    case 'policy-verdict': parts = verdictSections(rec); break;
    default: parts = [h('div', { class: 'sides' }, side('Source', rec.source), side('Destination', rec.destination))];
  }
  const raw = JSON.stringify(rec, null, 2);
  const copy = h('button', {
    type: 'button',
    onclick: () => navigator.clipboard && navigator.clipboard.writeText(raw),
  }, 'Copy JSON');
  body.replaceChildren(
    h('div', { class: 'muted' }, fmtDateTime(rec.time)),
    ...parts,
    section('Raw record', h('pre', { class: 'raw' }, raw), copy),
  );
  drawer().hidden = false;
  drawer().dataset.type = rec.type;
}

export function closeDetail() {
  drawer().hidden = true;
  for (const tr of document.querySelectorAll('tr.selected')) tr.classList.remove('selected');
}

export function initDetail() {
  document.getElementById('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDetail();
  });
}
