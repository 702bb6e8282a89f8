// The policy verdicts view: records of type `policy-verdict`, newest first. Until the agent
// enforces or audits policies it reports none, and the view says so rather than looking broken.

import { h, epNode, fmtTime, fmtCount, protoPort } from './dom.js';
import { Observer } from './api.js';
import { openDetail } from './detail.js';
import { verdictAction, policyNames } from './records.js';

const MAX_ROWS = 500;
let records = [];
let renderTimer = null;

const $ = (id) => document.getElementById(id);

function render() {
  renderTimer = null;
  const latest = records.slice(-MAX_ROWS).reverse();
  $('policy-table').tBodies[0].replaceChildren(
    ...latest.map((r) => {
      const action = verdictAction(r);
      const proto = protoPort(r.protocol || (r.l4 && r.l4.protocol), r.destination);
      const tr = h('tr', { dataset: { row: '', type: r.type, action } },
        h('td', { class: 'mono' }, fmtTime(r.time)),
        h('td', null, h('span', { class: `tag ${action}` }, action)),
        h('td', null, r.direction || (r.verdict && r.verdict.direction) || ''),
        h('td', null, epNode(r.source)),
        h('td', null, epNode(r.destination)),
        h('td', { class: 'mono' }, proto),
        h('td', null, policyNames(r)));
      tr.addEventListener('click', () => openDetail(r));
      return tr;
    }),
  );
  $('policy-empty').hidden = records.length > 0;
  $('count-policy').textContent = records.length ? fmtCount(records.length) : '';
}

export function initPolicy({ streamState }) {
  render();
  new Observer(
    { filter: { type: ['policy-verdict'] }, last: MAX_ROWS, follow: true },
    {
      onRecord: (r) => {
        if (r.type !== 'policy-verdict') return;
        records.push(r);
        if (records.length > 2 * MAX_ROWS) records = records.slice(-MAX_ROWS);
        if (!renderTimer) renderTimer = setTimeout(render, 250);
      },
      onReset: () => {
        records = [];
      },
      onState: (st) => streamState('policy', st),
    },
  ).start();
}
