// Small statistics helpers.

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function max(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.max(...v) : null;
}

export function min(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.min(...v) : null;
}

export function sum(xs) {
  return xs.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
}

/** Coefficient of variation (population standard deviation / mean); null for < 2 values. */
export function cv(xs) {
  if (xs.length < 2) return null;
  const mean = sum(xs) / xs.length;
  if (mean === 0) return null;
  const variance = sum(xs.map((x) => (x - mean) ** 2)) / xs.length;
  return Math.sqrt(variance) / mean;
}
