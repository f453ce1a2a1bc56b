// Small statistics helpers. Missing values (null: not measured) are left out.

type Maybe = number | null | undefined;

function numbers(xs: Maybe[]): number[] {
  return xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
}

export function median(xs: Maybe[]): number | null {
  const v = numbers(xs).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function max(xs: Maybe[]): number | null {
  const v = numbers(xs);
  return v.length ? Math.max(...v) : null;
}

export function min(xs: Maybe[]): number | null {
  const v = numbers(xs);
  return v.length ? Math.min(...v) : null;
}

export function sum(xs: Maybe[]): number {
  return numbers(xs).reduce((a, b) => a + b, 0);
}

/** Coefficient of variation (population standard deviation / mean); null for < 2 values. */
export function cv(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const mean = sum(xs) / xs.length;
  if (mean === 0) return null;
  const variance = sum(xs.map((x) => (x - mean) ** 2)) / xs.length;
  return Math.sqrt(variance) / mean;
}
