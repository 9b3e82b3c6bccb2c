// The discovered structure: class -> dimension -> attribute, with sizes and share bars. Each
// attribute is a button; choosing one opens its images.

import { bar, clear, el } from './dom.js';
import { num, pct } from './format.js';

const OPEN_CLASSES = 12; // more classes than this start folded, with a filter box

export function renderTree(container, structure, onChoose) {
  const byId = new Map();
  const classes = structure.classes.map((node) => classNode(node, byId, onChoose, structure.classes.length <= OPEN_CLASSES));
  const filter = structure.classes.length > OPEN_CLASSES ? filterBox(classes) : null;
  const count = structure.classes.length;
  clear(
    container,
    el('div', { class: 'heading' }, el('h2', {}, 'Structure'), el('span', { class: 'muted' }, `${num(count)} class${count === 1 ? '' : 'es'}`)),
    filter,
    classes.length ? classes : el('p', { class: 'muted' }, 'No structure was discovered.'),
  );
  return {
    byId,
    mark(id) {
      for (const button of container.querySelectorAll('button.attr[aria-current]')) button.removeAttribute('aria-current');
      const found = byId.get(id);
      if (!found) return;
      found.button.setAttribute('aria-current', 'true');
      found.button.closest('details').open = true;
      found.button.scrollIntoView({ block: 'nearest' });
    },
  };
}

function classNode(node, byId, onChoose, open) {
  const name = node.class;
  const dims = node.dimensions.map((dimension) => el(
    'div',
    { class: 'dim' },
    el('h4', {}, dimension.dimension),
    el('ul', {}, dimension.attributes.map((attribute) => {
      const entry = { ...attribute, class: name, dimension: dimension.dimension, classImages: node.images };
      entry.button = attributeButton(entry, onChoose);
      byId.set(attribute.id, entry);
      return el('li', {}, entry.button);
    })),
  ));
  return el(
    'details',
    { class: 'cls', open, dataset: { class: name } },
    el('summary', {}, el('span', { class: 'cls-name' }, name), el('span', { class: 'muted' }, `${num(node.images)} images`)),
    dims.length ? dims : el('p', { class: 'muted small' }, 'No dimensions.'),
  );
}

function attributeButton(entry, onChoose) {
  return el(
    'button',
    {
      type: 'button',
      class: `attr${entry.is_other ? ' other' : ''}`,
      dataset: { subpopulation: entry.id },
      title: `${entry.class} · ${entry.dimension} · ${entry.attribute}: ${num(entry.size)} images`,
      onclick: () => onChoose(entry.id),
    },
    el('span', { class: 'attr-name' }, entry.attribute),
    bar(entry.share, 'share'),
    el('span', { class: 'attr-size num' }, num(entry.size)),
    el('span', { class: 'attr-share num muted' }, pct(entry.share, 0)),
  );
}

function filterBox(classes) {
  const input = el('input', { type: 'search', placeholder: 'Filter classes', class: 'filter', 'aria-label': 'Filter classes' });
  input.addEventListener('input', () => {
    const needle = input.value.trim().toLowerCase();
    for (const node of classes) node.hidden = Boolean(needle) && !node.dataset.class.toLowerCase().includes(needle);
  });
  return input;
}
