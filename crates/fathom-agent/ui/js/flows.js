// The flow table: the CLI's `observe` filters as a form, the matching records live, newest
// first. The form is parsed by the agent (/ui/api/filter) with the CLI's own parsers, and
// the stream is the agent's /v1/observe, so a filter means here what it means to the CLI.

import { h, epNode, fmtTime, fmtCount } from './dom.js';
import { Observer, postJSON } from './api.js';
import { summarize, sideName } from './records.js';
import { openDetail } from './detail.js';

const FIELDS = [
  ['pod', 'Pod', 'ns/pod'],
  ['from_pod', 'From pod', 'ns/pod'],
  ['to_pod', 'To pod', 'ns/pod'],
  ['ip', 'IP / CIDR', '10.0.0.0/8'],
  ['from_ip', 'From IP', ''],
  ['to_ip', 'To IP', ''],
  ['port', 'Port', '80'],
  ['protocol', 'Protocol', 'tcp'],
  ['label', 'Label', 'app=web'],
  ['comm', 'Process', 'curl'],
];
const CHIPS = {
  event: ['start', 'update', 'end'],
  type: ['flow', 'l7', 'drop', 'policy-verdict'],
};
// Rows kept in the table (and asked for on (re)connect): enough to scroll back a while,
// few enough that the DOM stays fast.
const MAX_ROWS = 1000;
const REPLAY = 500;
const MAX_FLOWS_TRACKED = 5000;

let observer = null;
let pending = [];
let flushTimer = null;
let replaying = true;
let applied = 0;
const byFlow = new Map();
let onActivity = () => {};
let onStreamState = () => {};

const $ = (id) => document.getElementById(id);

function buildForm() {
  const form = $('flow-filter');
  for (const [name, label, ph] of FIELDS) {
    form.append(h('label', null, label, h('input', { type: 'text', id: `f-${name}`, name, placeholder: ph, spellcheck: 'false' })));
  }
  for (const [name, values] of Object.entries(CHIPS)) {
    form.append(
      h('label', null, name === 'type' ? 'Record type' : 'Flow event',
        h('div', { class: 'chips', id: `f-${name}` },
          values.map((v) => h('label', { class: 'chip' },
            h('input', { type: 'checkbox', name, value: v, onchange: apply }),
            h('span', null, v))))),
    );
  }
  form.append(
    h('button', { type: 'submit', class: 'primary', id: 'f-apply' }, 'Apply'),
    h('button', { type: 'button', id: 'f-clear', onclick: () => { setForm({}); apply(); } }, 'Clear'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  for (const [name] of FIELDS) $(`f-${name}`).addEventListener('change', apply);
}

/** The form as lists of strings; several values in one box are separated by commas or spaces. */
function readForm() {
  const out = {};
  for (const [name] of FIELDS) {
    const vals = $(`f-${name}`).value.split(/[\s,]+/).filter(Boolean);
    if (vals.length) out[name] = vals;
  }
  for (const name of Object.keys(CHIPS)) {
    const vals = [...document.querySelectorAll(`#f-${name} input:checked`)].map((i) => i.value);
    if (vals.length) out[name] = vals;
  }
  return out;
}

function setForm(form) {
  for (const [name] of FIELDS) $(`f-${name}`).value = (form[name] || []).join(', ');
  for (const name of Object.keys(CHIPS)) {
    for (const i of document.querySelectorAll(`#f-${name} input`)) i.checked = (form[name] || []).includes(i.value);
  }
}

function cliOf(form) {
  const args = ['fathom observe'];
  for (const [k, vals] of Object.entries(form)) {
    for (const v of vals) args.push(`--${k.replace('_', '-')} ${/[\s*]/.test(v) ? `'${v}'` : v}`);
  }
  args.push('-f');
  return args.join(' ');
}

/** The form in the URL (#flows?from_pod=x/a&port=80), so a view can be reloaded or shared. */
function writeHash(form) {
  const q = new URLSearchParams();
  for (const [k, vals] of Object.entries(form)) q.set(k, vals.join(','));
  const qs = q.toString();
  history.replaceState(null, '', `${location.search}#flows${qs ? `?${qs}` : ''}`);
}

function readHash() {
  const i = location.hash.indexOf('?');
  const form = {};
  if (i < 0) return form;
  for (const [k, v] of new URLSearchParams(location.hash.slice(i + 1))) form[k] = v.split(',').filter(Boolean);
  return form;
}

async function apply() {
  const form = readForm();
  // Applies can overlap (typing, then a chip): only the latest one may restart the stream.
  const seq = ++applied;
  let filter;
  try {
    ({ filter } = await postJSON('/ui/api/filter', form));
  } catch (e) {
    if (seq === applied) $('flow-error').textContent = e.message.replace(/^\/ui\/api\/filter: /, '');
    return;
  }
  if (seq !== applied) return;
  $('flow-error').textContent = '';
  $('flow-cli').textContent = cliOf(form);
  if (location.hash.startsWith('#flows')) writeHash(form);
  restart(filter);
}

function restart(filter) {
  if (observer) observer.stop();
  reset();
  observer = new Observer(
    { filter, last: REPLAY, follow: true },
    {
      onRecord: (r) => {
        pending.push(r);
        onActivity(r);
        scheduleFlush();
      },
      onReset: reset,
      onState: (st, msg) => {
        onStreamState('flows', st);
        if (st === 'error') $('flow-error').textContent = msg;
      },
    },
  ).start();
}

function reset() {
  pending = [];
  replaying = true;
  byFlow.clear();
  $('flow-table').tBodies[0].replaceChildren();
  updateSummary();
}

function scheduleFlush() {
  if (flushTimer) return;
  // Batch: a busy node sends hundreds of records a second; render a few times a second.
  flushTimer = setTimeout(flush, replaying ? 50 : 200);
}

function track(r) {
  if (!r.flow_id) return;
  let list = byFlow.get(r.flow_id);
  if (!list) {
    list = [];
    byFlow.set(r.flow_id, list);
    if (byFlow.size > MAX_FLOWS_TRACKED) byFlow.delete(byFlow.keys().next().value);
  }
  if (list.length < 50) list.push(r);
}

function row(r, fresh) {
  if (r.type === 'lost') {
    return h('tr', { class: 'lost', dataset: { type: 'lost' } },
      h('td', { colspan: 9, class: 'error' }, `${r.records} records were lost: the browser fell behind the stream`));
  }
  const s = summarize(r);
  const tr = h(
    'tr',
    {
      class: fresh ? 'fresh' : '',
      dataset: { row: '', type: r.type, src: sideName(r.source), dst: sideName(r.destination), flow: r.flow_id || '' },
    },
    h('td', { class: 'mono' }, fmtTime(r.time)),
    h('td', null, h('span', { class: `tag ${s.tag}` }, s.kind)),
    h('td', null, epNode(s.src)),
    h('td', null, epNode(s.dst)),
    h('td', { class: 'mono' }, s.proto),
    h('td', { title: s.info }, s.info),
    h('td', { class: 'num' }, s.pkts),
    h('td', { class: 'num' }, s.bytes),
    h('td', { class: 'mono', title: s.process }, s.process),
  );
  tr.addEventListener('click', () => {
    for (const x of tr.parentElement.querySelectorAll('tr.selected')) x.classList.remove('selected');
    tr.classList.add('selected');
    openDetail(r, (r.flow_id && byFlow.get(r.flow_id)) || [r]);
  });
  return tr;
}

function flush() {
  flushTimer = null;
  const batch = pending;
  pending = [];
  const body = $('flow-table').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const r of batch) track(r);
  // Newest on top: the batch is oldest first.
  for (let i = batch.length - 1; i >= 0; i--) frag.append(row(batch[i], !replaying));
  body.prepend(frag);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  replaying = false;
  updateSummary();
}

function updateSummary() {
  const n = $('flow-table').tBodies[0].rows.length;
  $('count-flows').textContent = n ? fmtCount(n) : '';
  $('flow-empty').hidden = n > 0;
  $('flow-summary').textContent = n >= MAX_ROWS ? `latest ${MAX_ROWS} records` : `${n} records`;
}

/** Put `form` in the filter and show the table (used by the map's "show flows"). */
export function showFlows(form) {
  setForm(form);
  location.hash = '#flows';
  apply();
}

export function initFlows({ activity, streamState }) {
  onActivity = activity;
  onStreamState = streamState;
  buildForm();
  // Without a filter in the URL the table shows flows: kernel drops and other records have
  // their own views, and would otherwise crowd the flows out on a busy node.
  setForm(location.hash.includes('?') ? readHash() : { type: ['flow'] });
  apply();
}
