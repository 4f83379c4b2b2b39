// Showing money, quantities and times. Money and quantities arrive as decimal strings and are shown as such:
// the pages never do arithmetic on money in floating point (sums come from the services).
import { session } from "./api/session";
import { currentLocale } from "./i18n";

interface WebConfig {
  time_zone: string;
  tenant_time_zones: Record<string, string>;
}

let config: WebConfig = { time_zone: "Asia/Shanghai", tenant_time_zones: {} };

export async function loadConfig(): Promise<void> {
  try {
    const answer = await fetch("/console-config.json");
    if (answer.ok) config = (await answer.json()) as WebConfig;
  } catch {
    /* the default zone stands; the services still bucket in the right one */
  }
}

// Local days are the tenant's (as the services bucket and settle them), not the browser's.
export function tenantZone(): string {
  const tenant = session.claims?.tenant;
  return (tenant && config.tenant_time_zones[tenant]) || config.time_zone;
}

// "12345.5" → "12,345.50" (grouping by the locale, two places), computed on the string.
export function money(amount: string | null | undefined, currency = ""): string {
  if (amount === null || amount === undefined || amount === "") return "—";
  const negative = amount.startsWith("-");
  const [whole, fraction = ""] = amount.replace(/^[-+]/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (fraction + "00").slice(0, 2);
  const symbol = currency === "CNY" ? "¥" : currency ? `${currency} ` : "";
  return `${negative ? "-" : ""}${symbol}${grouped}.${cents}`;
}

// A quantity as the service gave it, trailing zeros trimmed, with its unit.
export function quantity(value: string | null | undefined, unit = ""): string {
  if (value === null || value === undefined || value === "") return "—";
  const trimmed = value.includes(".") ? value.replace(/0+$/, "").replace(/\.$/, "") : value;
  const [whole, fraction] = trimmed.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const shown = fraction ? `${grouped}.${fraction}` : grouped;
  return unit ? `${shown} ${unit === "m3" ? "m³" : unit}` : shown;
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(currentLocale(), {
    timeZone: tenantZone(),
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(new Date(iso));
}

// The tenant's local calendar day of an instant, as YYYY-MM-DD (what the APIs take as `day`).
export function localDay(at: Date = new Date()): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tenantZone(),
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}

// The offset (e.g. "+08:00") of the tenant's zone at an instant, for building aware ISO times of local days.
export function zoneOffset(at: Date = new Date()): string {
  const name =
    new Intl.DateTimeFormat("en-US", { timeZone: tenantZone(), timeZoneName: "longOffset" })
      .formatToParts(at)
      .find((p) => p.type === "timeZoneName")?.value ?? "GMT";
  const offset = name.replace("GMT", "");
  return offset === "" ? "+00:00" : offset;
}

// Local midnight of a YYYY-MM-DD day in the tenant's zone, as an aware ISO string.
export function startOfLocalDay(day: string): string {
  return `${day}T00:00:00${zoneOffset(new Date(`${day}T12:00:00Z`))}`;
}

export function addDays(day: string, days: number): string {
  const at = new Date(`${day}T12:00:00Z`);
  at.setUTCDate(at.getUTCDate() + days);
  return at.toISOString().slice(0, 10);
}
