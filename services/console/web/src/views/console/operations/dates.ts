// Calendar arithmetic on the tenant's local days (YYYY-MM-DD strings) for the curves: ranges, the range a
// comparison reads, and the buckets a range should have (so a bucket vee has no data for shows as a gap).
import { addDays, startOfLocalDay } from "../../../format";
import type { Granularity } from "./api";

export const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export function isDay(text: unknown): text is string {
  return typeof text === "string" && /^\d{4}-\d\d-\d\d$/.test(text) && !Number.isNaN(Date.parse(`${text}T12:00:00Z`));
}

// Days from a to b (b − a), both local days.
export function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T12:00:00Z`) - Date.parse(`${a}T12:00:00Z`)) / DAY_MS);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate(); // month 1..12
}

// The same day `months` months later or earlier; the 31st becomes the month's last day (29 Feb → 28 Feb).
export function addMonths(day: string, months: number): string {
  const [y, m, d] = day.split("-").map(Number);
  const index = y * 12 + (m - 1) + months;
  const year = Math.floor(index / 12);
  const month = (index % 12) + 1;
  const date = Math.min(d, daysInMonth(year, month));
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(date).padStart(2, "0")}`;
}

export function firstOfMonth(day: string): string {
  return `${day.slice(0, 7)}-01`;
}

// [first, end) as local days, end exclusive; month granularity covers whole months.
export interface DayRange {
  first: string;
  end: string;
}

// What the picker says (from..to, both inclusive) as the range the API reads.
export function rangeOf(from: string, to: string, granularity: Granularity): DayRange {
  if (granularity === "month") return { first: firstOfMonth(from), end: addMonths(firstOfMonth(to), 1) };
  return { first: from, end: addDays(to, 1) };
}

// The comparison's range: a year earlier, or the range of the same length just before.
export function comparisonRange(range: DayRange, mode: "yoy" | "prev", granularity: Granularity): DayRange {
  if (mode === "yoy") return { first: addMonths(range.first, -12), end: addMonths(range.end, -12) };
  if (granularity === "month") {
    const [y1, m1] = range.first.split("-").map(Number);
    const [y2, m2] = range.end.split("-").map(Number);
    const months = (y2 - y1) * 12 + (m2 - m1);
    return { first: addMonths(range.first, -months), end: range.first };
  }
  return { first: addDays(range.first, -daysBetween(range.first, range.end)), end: range.first };
}

export function instantOf(day: string): number {
  return Date.parse(startOfLocalDay(day));
}

// The starts (epoch ms) of the buckets [first, end) is made of, in the tenant's zone.
export function bucketStarts(range: DayRange, granularity: Granularity): number[] {
  const starts: number[] = [];
  if (granularity === "hour") {
    const end = instantOf(range.end);
    for (let t = instantOf(range.first); t < end; t += HOUR_MS) starts.push(t);
  } else if (granularity === "day") {
    for (let d = range.first; d < range.end; d = addDays(d, 1)) starts.push(instantOf(d));
  } else {
    for (let d = range.first; d < range.end; d = addMonths(d, 1)) starts.push(instantOf(d));
  }
  return starts;
}

// How many buckets a range would draw; the page refuses ranges that would make a chart unreadable and slow.
export function bucketCount(range: DayRange, granularity: Granularity): number {
  const days = daysBetween(range.first, range.end);
  if (granularity === "hour") return days * 24;
  if (granularity === "day") return days;
  return Math.round(days / 30.44);
}

export const MAX_BUCKETS: Record<Granularity, number> = { hour: 24 * 62, day: 800, month: 120 };
