// The drops view: the kernel's exact per-reason counters (from /v1/status), and from the drop
// records (rate limited per reason; each carries how many drops it stands for) a per-pod
// breakdown and the latest drops with the kernel function that dropped each one.

import { h, epNode, fmtTime, fmtCount, podOf, protoPort } from './dom.js';
import { Observer } from './api.js';
import { openDetail } from './detail.js';
import { benignReasons } from './map.js';

const MAX_ROWS = 300;
let records = [];
let renderTimer = null;
let onStreamState = () => {};
let onActivity = () => {};

const $ = (id) => document.getElementById(id);
const weight = (r) => 1 + (r.suppressed || 0);

/** The pod a drop is charged to: the receiver when it is a pod, else the sender. */
function podOfDrop(r) {
  return podOf(r.destination) || podOf(r.source) || '(host)';
}

export function renderReasons(kernelDrops) {
  const entries = Object.entries(kernelDrops || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const box = $('drop-reasons');
  // The benign reasons may have arrived since the table was drawn (they come with the map).
  if (!renderTimer) renderTimer = setTimeout(renderTable, 0);
  if (!entries.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'No drops counted since the agent started.'));
    return;
  }
  const max = entries[0][1];
  box.replaceChildren(
    ...entries.map(([reason, n]) => {
      const bar = h('span');
      bar.style.width = `${Math.max(2, (100 * n) / max)}%`;
      const b = benignReasons().has(reason);
      const why = b ? `${reason}: not lost traffic (connection teardown, or a flooded copy for another host)` : reason;
      return h('div', { class: `bar${b ? ' benign' : ''}`, dataset: { reason } },
        h('span', { class: 'label', title: why }, reason),
        h('span', { class: 'track' }, bar),
        h('span', { class: 'n' }, fmtCount(n)));
    }),
  );
}

/** The records the view shows: benign reasons only when asked for. */
function shown() {
  if ($('drops-benign').checked) return records;
  const benign = benignReasons();
  return records.filter((r) => !benign.has(r.reason));
}

function renderPods(list) {
  const byPod = new Map();
  for (const r of list) {
    const pod = podOfDrop(r);
    const m = byPod.get(pod) || new Map();
    m.set(r.reason, (m.get(r.reason) || 0) + weight(r));
    byPod.set(pod, m);
  }
  const rows = [...byPod.entries()]
    .map(([pod, m]) => [pod, [...m.entries()].sort((a, b) => b[1] - a[1]), [...m.values()].reduce((a, b) => a + b, 0)])
    .sort((a, b) => b[2] - a[2]);
  $('drop-pods').replaceChildren(
    rows.length
      ? h('table', { class: 'mini' },
          h('thead', null, h('tr', null, h('th', null, 'Pod'), h('th', null, 'Reasons'), h('th', { class: 'num' }, 'Drops'))),
          h('tbody', null, rows.map(([pod, reasons, total]) => h('tr', { dataset: { pod } },
            h('td', null, pod),
            h('td', { class: 'mono' }, reasons.map(([r, n]) => `${r} ${n}`).join(', ')),
            h('td', { class: 'num' }, fmtCount(total))))))
      : h('p', { class: 'muted' }, 'No drop records yet.'),
  );
}

function renderTable() {
  renderTimer = null;
  const list = shown();
  const latest = list.slice(-MAX_ROWS).reverse();
  $('drop-table').tBodies[0].replaceChildren(
    ...latest.map((r) => {
      const tr = h('tr', { dataset: { row: '', type: 'drop', reason: r.reason, src: podOf(r.source) || '', dst: podOf(r.destination) || '' } },
        h('td', { class: 'mono' }, fmtTime(r.time)),
        h('td', null, h('span', { class: 'tag drop' }, r.reason)),
        h('td', null, epNode(r.source)),
        h('td', null, epNode(r.destination)),
        h('td', { class: 'mono' }, protoPort(r.protocol, r.destination)),
        h('td', { class: 'mono', title: r.location }, r.location),
        h('td', { class: 'mono' }, r.interface ? r.interface.name || `#${r.interface.ifindex}` : ''),
        h('td', { class: 'num' }, fmtCount(weight(r))));
      tr.addEventListener('click', () => openDetail(r));
      return tr;
    }),
  );
  $('drop-empty').hidden = list.length > 0;
  const total = list.reduce((a, r) => a + weight(r), 0);
  $('count-drops').textContent = total ? fmtCount(total) : '';
  renderPods(list);
}

export function initDrops({ streamState, activity }) {
  onStreamState = streamState;
  onActivity = activity;
  renderReasons({});
  renderTable();
  $('drops-benign').addEventListener('change', renderTable);
  new Observer(
    { filter: { type: ['drop'] }, last: MAX_ROWS, follow: true },
    {
      onRecord: (r) => {
        if (r.type !== 'drop') return;
        records.push(r);
        if (records.length > 2 * MAX_ROWS) records = records.slice(-MAX_ROWS);
        onActivity(r);
        if (!renderTimer) renderTimer = setTimeout(renderTable, 250);
      },
      onReset: () => {
        records = [];
      },
      onState: (st) => onStreamState('drops', st),
    },
  ).start();
}
