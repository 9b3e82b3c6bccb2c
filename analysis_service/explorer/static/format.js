// How numbers, shares and times read on the pages.

const integer = new Intl.NumberFormat('en');

export const num = (n) => (n === null || n === undefined ? '–' : integer.format(n));

export function pct(fraction, digits = 1) {
  if (fraction === null || fraction === undefined) return '–';
  const value = fraction * 100;
  return `${value.toFixed(value !== 0 && Math.abs(value) < 1 ? 2 : digits)}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function when(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return date.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

export function pvalue(p) {
  if (p === null || p === undefined) return '–';
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}
