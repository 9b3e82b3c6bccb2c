// Where a finished job's results are downloaded: exports, assignments and group labels.

import { clear, el } from './dom.js';

export function renderDownloads(container, job, structure) {
  if (job.status !== 'succeeded') {
    clear(container, el('h2', {}, 'Downloads'), el('p', { class: 'muted' }, `Available once the job has succeeded (it is ${job.status}).`));
    return;
  }
  const base = `/v1/jobs/${job.id}`;
  const link = (href, text, note) => el('li', {}, el('a', { href, download: '' }, text), note ? el('span', { class: 'muted' }, ` ${note}`) : null);
  const groups = groupLinks(structure).map(([label, params]) => link(`${base}/groups?${params}&format=csv`, label));
  clear(
    container,
    el('h2', {}, 'Downloads'),
    el('h3', {}, 'One row per image'),
    el('p', { class: 'hint' }, 'file_name, class, caption, a column per dimension, and each prediction set\'s prediction and whether it is right.'),
    el('ul', { class: 'links' },
      link(`${base}/export?format=parquet`, 'Parquet', '(pandas, polars, DuckDB)'),
      link(`${base}/export?format=csv`, 'CSV', '(spreadsheets; formulas escaped)'),
      link(`${base}/export?format=jsonl`, 'JSONL'),
      link(`${base}/assignments?format=csv`, 'Assignments CSV', '(image, class, dimension, attribute)'),
    ),
    el('h3', {}, 'Group labels for robust training'),
    el('p', { class: 'hint' }, 'filename, split, y, a, group: one dimension as the group attribute (SubpopBench, DFR, GroupDRO).'),
    groups.length ? el('ul', { class: 'links' }, groups) : el('p', { class: 'muted' }, 'No dimensions.'),
  );
}

// A dimension every class has is one file over all of them; one that only some classes have
// is a file per class (the API refuses a dimension a class asked for lacks).
function groupLinks(structure) {
  const classesOf = new Map();
  for (const node of structure.classes) {
    for (const d of node.dimensions) classesOf.set(d.dimension, [...(classesOf.get(d.dimension) || []), node.class]);
  }
  const links = [];
  for (const [dimension, classes] of classesOf) {
    if (classes.length === structure.classes.length) {
      links.push([dimension, new URLSearchParams({ dimension })]);
    } else {
      for (const name of classes) links.push([`${dimension} (${name})`, new URLSearchParams({ dimension, class: name })]);
    }
  }
  return links;
}
