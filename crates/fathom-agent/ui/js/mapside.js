// The service map's side panel: summary cards, the selected node or edge with a way into
// the flow table, and the busiest connections; and the edge tooltip's content.

import { h, kv, fmtBytes, fmtRate, fmtPct, fmtMs, fmtCount } from './dom.js';
import { showFlows } from './flows.js';

/** Everything the map knows about one edge. */
export function edgeTip(e, benign) {
  const rows = [
    ['ports', e.ports.join(', ')],
    ['flows', `${fmtCount(e.flows)} (${fmtCount(e.active)} active)`],
    ['new flows', fmtRate(e.flow_rate)],
    ['bytes', `${fmtBytes(e.bytes_out)} sent · ${fmtBytes(e.bytes_in)} back`],
    ['packets', `${fmtCount(e.packets_out)} sent · ${fmtCount(e.packets_in)} back`],
    ['resets', e.resets || null],
  ];
  if (e.l7) {
    rows.push(['L7', `${[...e.l7.protocols].join(', ')}: ${fmtCount(e.l7.requests)} requests`]);
    rows.push(['errors', `${fmtCount(e.l7.errors)} (${fmtPct(e.l7.error_rate)})`]);
    rows.push(['latency', `p50 ${fmtMs(e.l7.latency_p50_ms)} · p95 ${fmtMs(e.l7.latency_p95_ms)}`]);
  }
  const reasons = (b) => Object.entries(e.drop_reasons).filter(([r]) => benign.has(r) === b).map(([r, n]) => `${r} ${n}`).join(', ');
  if (e.drops) rows.push(['drops', `${fmtCount(e.drops)}: ${reasons(false)}`]);
  if (e.benign_drops) rows.push(['benign drops', `${fmtCount(e.benign_drops)}: ${reasons(true)}`]);
  const verdicts = Object.entries(e.verdicts || {});
  if (verdicts.length) rows.push(['verdicts', verdicts.map(([a, n]) => `${a} ${n}`).join(', ')]);
  return [h('h3', null, `${e.source} → ${e.target}`), kv(rows)];
}

/** Flow table filter for one side of the map: a pod, a workload's pods, or an address. */
function sideFilter(node, dir) {
  if (!node || node.kind === 'world') return {};
  const key = (k) => (dir ? `${dir}_${k}` : k);
  if (node.kind === 'ip') return { [key('ip')]: [node.id] };
  if (node.kind === 'workload') return { [key('pod')]: node.pods || [] };
  return { [key('pod')]: [node.id] };
}

function nodeById(m, id) {
  return m.nodes.find((n) => n.id === id);
}

function selectionPanel(m, selected, benign) {
  if (!selected) return null;
  if (selected.kind === 'node') {
    const n = nodeById(m, selected.id);
    if (!n) return null;
    const labels = Object.entries(n.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ');
    return h('div', { class: 'panel', id: 'map-selection' },
      h('h3', null, n.id),
      kv([
        ['kind', n.kind],
        ['namespace', n.namespace],
        ['labels', labels],
        ['pods', n.pods ? n.pods.join(', ') : null],
        ['flows', `${fmtCount(n.flows_out)} out · ${fmtCount(n.flows_in)} in`],
        ['bytes', `${fmtBytes(n.bytes_sent)} sent · ${fmtBytes(n.bytes_received)} received`],
        ['drops', n.drops || null],
      ]),
      n.kind !== 'world' ? h('button', { type: 'button', onclick: () => showFlows(sideFilter(n, '')) }, 'Show flows') : null);
  }
  const e = m.edges.find((x) => x.id === selected.id);
  if (!e) return null;
  const filter = { ...sideFilter(nodeById(m, e.source), 'from'), ...sideFilter(nodeById(m, e.target), 'to') };
  return h('div', { class: 'panel', id: 'map-selection' },
    ...edgeTip(e, benign),
    h('button', { type: 'button', onclick: () => showFlows(filter) }, 'Show flows'));
}

/** Fill `el` for map `m`; `select` is called with the edge a list entry names. */
export function renderSide(el, m, { selected, select, benign }) {
  const t = m.totals;
  const card = (k, v, cls) => h('div', { class: `card ${cls || ''}` }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k));
  const rate = t.flows / Math.max(1, m.window_seconds);
  // Drops that mark edges; benign and address-less drops are in the tooltips only.
  const drops = m.edges.reduce((a, e) => a + e.drops, 0);
  const top = [...m.edges]
    .sort((a, b) => (b.drops > 0) - (a.drops > 0) || b.bytes_out + b.bytes_in - (a.bytes_out + a.bytes_in) || b.flows - a.flows)
    .slice(0, 8);
  const maxBytes = Math.max(1, ...top.map((e) => e.bytes_out + e.bytes_in));
  const parts = [
    h('div', { class: 'cards' },
      card('nodes', fmtCount(m.nodes.length)),
      card('flows', fmtCount(t.flows)),
      card('drops', fmtCount(drops), drops ? 'bad' : ''),
      t.l7_requests ? card('L7 errors', `${fmtCount(t.l7_errors)}`, t.l7_errors ? 'warn' : '') : card('flow rate', fmtRate(rate))),
    selectionPanel(m, selected, benign),
    h('div', { class: 'panel' },
      h('h3', null, 'Busiest connections'),
      top.length
        ? h('ul', { class: 'toplist' }, top.map((e) => {
            const bar = h('span');
            bar.style.width = `${(100 * (e.bytes_out + e.bytes_in)) / maxBytes}%`;
            const stats = [`${fmtCount(e.flows)} flows`, fmtBytes(e.bytes_out + e.bytes_in)];
            if (e.drops) stats.push(`${fmtCount(e.drops)} dropped`);
            if (e.l7) stats.push(`${fmtPct(e.l7.error_rate)} err`);
            return h('li', { onclick: () => select({ kind: 'edge', id: e.id }) },
              h('div', { class: 'route' }, h('span', { class: `dot s-${e.status}` }), `${e.source} → ${e.target}`),
              h('div', { class: 'stats' }, stats.join(' · ')),
              h('div', { class: `meter ${e.drops ? 'bad' : ''}` }, bar));
          }))
        : h('p', { class: 'muted' }, 'Nothing yet.')),
  ];
  el.replaceChildren(...parts.filter(Boolean));
}
