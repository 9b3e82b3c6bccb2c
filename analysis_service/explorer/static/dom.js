// Building DOM nodes from data without ever parsing it as HTML: text is always a text node.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// A horizontal bar filled to a fraction (0..1). Widths are set through the CSS object model,
// which the page's style policy allows (style attributes in markup it does not).
export function bar(fraction, cls = '') {
  const fill = el('span', { class: 'fill' });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return el('span', { class: `bar ${cls}`.trim(), 'aria-hidden': 'true' }, fill);
}

export function placeAt(node, fraction, prop = 'left') {
  node.style[prop] = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return node;
}
