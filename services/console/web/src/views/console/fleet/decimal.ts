// Exact sums of the decimal strings the services send (consumption totals under a curve): BigInt in units of the
// smallest place, so 0.1 + 0.2 is 0.3 and a year of hourly buckets adds up to what vee would say.

interface Scaled {
  units: bigint;
  places: number;
}

function parse(value: string): Scaled | null {
  const match = /^([-+]?)(\d*)(?:\.(\d*))?$/.exec(value.trim());
  if (!match || (match[2] === "" && !match[3])) return null;
  const fraction = match[3] ?? "";
  const units = BigInt(`${match[2] || "0"}${fraction}`) * (match[1] === "-" ? -1n : 1n);
  return { units, places: fraction.length };
}

function rescale(value: Scaled, places: number): bigint {
  return value.units * 10n ** BigInt(places - value.places);
}

function format(units: bigint, places: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(places + 1, "0");
  const whole = digits.slice(0, digits.length - places);
  const fraction = places ? `.${digits.slice(digits.length - places)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

// The exact sum; values that are not decimals (null, "") are left out. null when nothing was added.
export function sum(values: Iterable<string | null | undefined>): string | null {
  const parsed: Scaled[] = [];
  for (const value of values) {
    const one = value == null ? null : parse(value);
    if (one) parsed.push(one);
  }
  if (!parsed.length) return null;
  const places = Math.max(...parsed.map((p) => p.places));
  return format(parsed.reduce((acc, p) => acc + rescale(p, places), 0n), places);
}

// The change from `before` to `now` in percent with one place, as text ("+12.5"); null when before is zero.
export function percentChange(now: string | null, before: string | null): string | null {
  const a = now == null ? null : parse(now);
  const b = before == null ? null : parse(before);
  if (!a || !b || b.units === 0n) return null;
  const places = Math.max(a.places, b.places);
  const x = rescale(a, places);
  const y = rescale(b, places);
  // (x - y) / y * 100, to one place, rounded half away from zero: in tenths of a percent.
  const tenths = ((x - y) * 2000n) / y;
  const rounded = (tenths + (tenths >= 0n ? 1n : -1n)) / 2n;
  const text = format(rounded, 1);
  return rounded > 0n ? `+${text}` : text;
}
