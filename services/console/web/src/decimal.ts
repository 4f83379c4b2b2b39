// Exact arithmetic on the decimal strings the services send (consumption, prices, money), for every page: a
// total over a range and its change against a comparison are computed here, and floating point would drift
// ("0.1" + "0.2"). A value is an integer count of units of 10^-scale, held in a BigInt; never a Number.

interface Exact {
  units: bigint;
  scale: number; // digits after the point
}

// Plain ("12.340", "-3") or scientific ("1E+2", "0E-8": Python's str(Decimal) writes these) notation.
const DECIMAL = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

export function isDecimal(text: string | null | undefined): boolean {
  if (text === null || text === undefined) return false;
  const m = DECIMAL.exec(text.trim());
  return !!m && (m[2] + (m[3] ?? "")).length > 0;
}

function parse(text: string): Exact {
  const m = DECIMAL.exec(text.trim());
  if (!m || (m[2] + (m[3] ?? "")).length === 0) throw new RangeError(`not a decimal: ${JSON.stringify(text)}`);
  const [, sign, whole, fraction = "", exponent = "0"] = m;
  let digits = `${whole}${fraction}` || "0";
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    digits += "0".repeat(-scale);
    scale = 0;
  }
  const units = BigInt(digits);
  return { units: sign === "-" ? -units : units, scale };
}

function rescale(value: Exact, scale: number): bigint {
  return value.units * 10n ** BigInt(scale - value.scale);
}

function format(value: Exact): string {
  const negative = value.units < 0n;
  const digits = (negative ? -value.units : value.units).toString().padStart(value.scale + 1, "0");
  const whole = digits.slice(0, digits.length - value.scale);
  const fraction = value.scale ? `.${digits.slice(digits.length - value.scale)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

// a + b, at the finer of the two scales ("1.5" + "2.25" = "3.75").
export function add(a: string, b: string): string {
  const x = parse(a);
  const y = parse(b);
  const scale = Math.max(x.scale, y.scale);
  return format({ units: rescale(x, scale) + rescale(y, scale), scale });
}

export function subtract(a: string, b: string): string {
  return add(a, negate(b));
}

export function negate(a: string): string {
  const x = parse(a);
  return format({ units: -x.units, scale: x.scale });
}

// The sum of a list ("0" for none).
export function sum(values: Iterable<string>): string {
  let total = "0";
  for (const value of values) total = add(total, value);
  return total;
}

// -1, 0 or 1 as a < b, a = b, a > b.
export function compare(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  const scale = Math.max(x.scale, y.scale);
  const d = rescale(x, scale) - rescale(y, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export function isZero(a: string): boolean {
  return parse(a).units === 0n;
}

// Digits after the point as written ("5.00" → 2, "1E-3" → 3): money may have at most 2.
export function places(a: string): number {
  return parse(a).scale;
}

// numerator / denominator rounded half away from zero.
function divideRounded(numerator: bigint, denominator: bigint): bigint {
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  const q = (2n * n + d) / (2n * d);
  return negative ? -q : q;
}

// (current − earlier) / earlier × 100 with `digits` places ("110", "100" → "10.0"); null when earlier is zero
// (no change can be stated against nothing).
export function percentChange(current: string, earlier: string, digits = 1): string | null {
  const x = parse(current);
  const y = parse(earlier);
  if (y.units === 0n) return null;
  const scale = Math.max(x.scale, y.scale);
  const a = rescale(x, scale);
  const b = rescale(y, scale);
  const units = divideRounded((a - b) * 100n * 10n ** BigInt(digits), b);
  return format({ units, scale: digits });
}

// A share (0..1 as a decimal string, e.g. "0.25") as a percentage with `digits` places ("25.0").
export function asPercent(share: string, digits = 1): string {
  const x = parse(share);
  return format({ units: divideRounded(x.units * 100n * 10n ** BigInt(digits), 10n ** BigInt(x.scale)), scale: digits });
}
