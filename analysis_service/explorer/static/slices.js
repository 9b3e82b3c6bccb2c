// Where a model errs: the job's prediction sets, the slices table with error rates and their
// intervals, and a slice's images with each image's prediction.

import { api, query } from './api.js';
import { clear, el, placeAt } from './dom.js';
import { num, pct, pvalue } from './format.js';
import { imageCard, openGrid } from './grid.js';
import { errorNote } from './widgets.js';

const SHOWN = 100;
const reports = new Map(); // the slices of a set and options, asked once per page view
let drawing = 0; // the latest render: an earlier one still waiting on the API gives way to it

// The slice a URL names (its class and one or two conditions), or null.
export function sliceOf(params) {
  const slice = { class: params.get('class'), dimension: params.get('dimension'), attribute: params.get('attribute') };
  if (!slice.class || !slice.dimension || !slice.attribute) return null;
  if (params.get('dimension2') && params.get('attribute2')) {
    slice.dimension2 = params.get('dimension2');
    slice.attribute2 = params.get('attribute2');
  }
  return slice;
}

function sliceParams(row) {
  const [first, second] = row.conditions;
  const params = { class: row.class, dimension: first.dimension, attribute: first.attribute };
  if (second) Object.assign(params, { dimension2: second.dimension, attribute2: second.attribute });
  return params;
}

const sameSlice = (row, slice) => {
  const p = sliceParams(row);
  return ['class', 'dimension', 'attribute', 'dimension2', 'attribute2'].every((k) => (p[k] || null) === (slice[k] || null));
};

export async function renderSlices(container, { job, params, navigate, hasImages, canWrite }) {
  const mine = ++drawing;
  let sets;
  try {
    sets = await api(`/v1/jobs/${job.id}/predictions`);
    if (mine !== drawing) return;
  } catch (error) {
    if (mine === drawing) clear(container, el('h2', {}, 'Slices'), errorNote(error));
    return;
  }
  if (!sets.length) {
    clear(container, el('div', { class: 'card' }, el('h2', {}, 'Slices'), noPredictions(job, canWrite, navigate)));
    return;
  }
  const setId = Number(params.get('predictions')) || sets[sets.length - 1].id;
  const pairs = params.get('pairs') !== '0';
  const slice = sliceOf(params);
  const errorsOnly = params.get('errors_only') === '1';
  const tableBox = el('div', { class: 'card' });
  const gridBox = el('section', { class: 'card', id: 'slice-grid', hidden: !slice });
  clear(container, tableBox, gridBox);

  const set = (changes) => navigate({ tab: 'slices', predictions: setId, pairs: pairs ? null : '0', ...changes });
  const select = el('select', { 'aria-label': 'Prediction set', onchange: () => set({ predictions: select.value }) },
    sets.map((s) => el('option', { value: s.id, selected: s.id === setId }, `${s.name || `set ${s.id}`} · ${pct(s.accuracy)} right · ${num(s.rows)} rows`)));
  const pairBox = el('input', { type: 'checkbox', checked: pairs, onchange: () => set({ pairs: pairBox.checked ? null : '0' }) });
  const tableSlot = el('div', {}, el('p', { class: 'muted' }, 'Counting…'));
  clear(
    tableBox,
    el('div', { class: 'heading' }, el('h2', {}, 'Slices'),
      el('div', { class: 'controls' }, select, el('label', { class: 'inline' }, pairBox, ' pairs of attributes'))),
    tableSlot,
  );

  let report;
  try {
    const key = `${setId}:${pairs}`;
    if (!reports.has(key)) {
      reports.set(key, api(`/v1/jobs/${job.id}/slices${query({ predictions: setId, max_conditions: pairs ? 2 : 1, limit: SHOWN })}`));
    }
    report = await reports.get(key);
    if (mine !== drawing) return;
  } catch (error) {
    reports.clear();
    if (mine === drawing) clear(tableSlot, errorNote(error));
    return;
  }
  clear(tableSlot, sliceTable(report, slice, (row) => set({ ...sliceParams(row), errors_only: errorsOnly ? '1' : null })));
  if (slice) {
    const row = report.items.find((r) => sameSlice(r, slice)) || null;
    openSliceGrid(gridBox, { job, setId, slice, row, errorsOnly, hasImages, set });
    gridBox.scrollIntoView({ block: 'start' });
  }
}

// Each condition as its dimension (muted) and attribute, joined by "and".
function describe(conditions) {
  return conditions.flatMap(([dimension, attribute], i) => [
    i ? el('span', { class: 'muted' }, ' and ') : null,
    el('span', { class: 'dim-name' }, `${dimension}: `),
    attribute,
  ]);
}

function sliceTable(report, selected, onChoose) {
  const summary = el('p', { class: 'hint' },
    `${num(report.tested)} slices tested, ${num(report.significant)} significant at a false discovery rate of ${pct(report.alpha, 0)} (Benjamini-Hochberg). `,
    'Bars: the 95% interval of the error rate, its point, and a tick at the rest of the class.');
  if (!report.items.length) return el('div', {}, summary, el('p', { class: 'muted' }, 'No slice has an error.'));
  const scale = Math.min(1, Math.ceil(Math.max(...report.items.map((r) => r.ci_high), 0.1) * 10) / 10);
  const head = ['Slice', 'Images', 'Wrong', `Error rate (0–${pct(scale, 0)})`, '', 'Rest', 'Gap', 'q', ''];
  return el('div', {}, summary, el('table', { class: 'slices' },
    el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))),
    el('tbody', {}, report.items.map((row) => sliceRow(row, scale, selected && sameSlice(row, selected), onChoose)))));
}

function sliceRow(row, scale, current, onChoose) {
  const conditions = describe(row.conditions.map((c) => [c.dimension, c.attribute]));
  return el('tr', { class: `${row.significant ? 'significant' : ''}${current ? ' current' : ''}`.trim(), 'aria-current': current ? 'true' : null },
    el('td', {}, el('button', { type: 'button', class: 'link slice', onclick: () => onChoose(row), title: row.description },
      el('strong', {}, row.class), ' · ', conditions)),
    el('td', { class: 'num' }, num(row.size)),
    el('td', { class: 'num' }, num(row.errors)),
    el('td', { class: 'interval-cell' }, interval(row, scale)),
    el('td', { class: 'num' }, pct(row.error_rate)),
    el('td', { class: 'num muted' }, pct(row.baseline_error_rate)),
    el('td', { class: 'num' }, `${row.gap >= 0 ? '+' : ''}${pct(row.gap)}`),
    el('td', { class: 'num muted' }, pvalue(row.q_value)),
    el('td', {}, row.significant ? el('span', { class: 'badge significant' }, 'significant') : null),
  );
}

function interval(row, scale) {
  const band = placeAt(el('span', { class: 'band' }), row.ci_low / scale);
  band.style.width = `${Math.max(0, Math.min(1, row.ci_high / scale) - row.ci_low / scale) * 100}%`;
  return el('span', { class: 'interval', title: `${pct(row.error_rate)} (95% CI ${pct(row.ci_low)}–${pct(row.ci_high)}); rest of the class ${pct(row.baseline_error_rate)}` },
    band,
    placeAt(el('span', { class: 'base' }), row.baseline_error_rate / scale),
    placeAt(el('span', { class: 'point' }), row.error_rate / scale));
}

function openSliceGrid(box, { job, setId, slice, row, errorsOnly, hasImages, set }) {
  box.hidden = false;
  const conditions = [[slice.dimension, slice.attribute], [slice.dimension2, slice.attribute2]].filter(([d]) => d);
  const only = el('input', { type: 'checkbox', checked: errorsOnly, onchange: () => set({ ...slice, errors_only: only.checked ? '1' : null }) });
  const heading = el('div', { class: 'heading' },
    el('h2', {}, slice.class, ' · ', describe(conditions)),
    el('label', { class: 'inline' }, only, ' only the wrong ones'));
  const total = row ? (errorsOnly ? row.errors : row.size) : null;
  const path = `/v1/jobs/${job.id}/slices/images`;
  openGrid(box, {
    heading,
    total,
    pageOf: async (after) => {
      const page = await api(`${path}${query({ predictions: setId, ...slice, errors_only: errorsOnly || null, after, limit: 60 })}`);
      return { items: page.items, next: page.next_after };
    },
    card: (item) => imageCard({
      imageId: item.image_id,
      path: item.image,
      caption: null,
      hasImages,
      cls: item.correct ? 'right' : 'wrong',
      extra: el('p', { class: `prediction ${item.correct ? 'right' : 'wrong'}` },
        item.correct ? '✓ ' : '✗ ', `predicted ${item.prediction}`,
        item.correct ? '' : ` (is ${item.label})`,
        item.confidence === null || item.confidence === undefined ? '' : ` · ${item.confidence.toFixed(2)}`),
    }),
  });
}

function noPredictions(job, canWrite, navigate) {
  const intro = el('p', { class: 'hint' },
    'No predictions yet. Give a model\'s predictions on this job\'s images (CSV or JSONL: image, prediction, and optionally label, confidence, split) to see which subpopulations it fails on.');
  if (!canWrite) return el('div', {}, intro);
  const status = el('div', { role: 'status' });
  const form = el('form', { class: 'row' },
    el('label', {}, 'Predictions file', el('input', { type: 'file', name: 'file', accept: '.csv,.jsonl,.ndjson', required: true })),
    el('label', {}, 'Name', el('input', { name: 'name', placeholder: 'e.g. resnet50-epoch90' })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary' }, 'Upload')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    if (!String(data.get('name') || '').trim()) data.delete('name');
    const response = await fetch(`/v1/jobs/${job.id}/predictions/upload`, {
      method: 'POST', body: data, credentials: 'same-origin', headers: { 'X-CSRF-Token': document.body.dataset.csrf || '' },
    });
    const body = await response.json().catch(() => null);
    if (response.ok) navigate({ tab: 'slices', predictions: body.id });
    else clear(status, el('p', { class: 'error', role: 'alert' }, (body && body.detail) || `The API answered ${response.status}.`));
  });
  return el('div', {}, intro, form, status);
}
