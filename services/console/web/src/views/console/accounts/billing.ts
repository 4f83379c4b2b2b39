// What the accounts pages and the customer portal read from billing, commands and notify: the answers' shapes
// (as the services' response models define them), refusals with the service's own reason, and exact arithmetic
// on the decimal strings money and quantities arrive as (never floats).
import { call, problemOf, raw, reasonOf, type CallOptions, type Service } from "../../../api/client";
import { compare, negate, sum } from "../../../decimal";

export type BalanceState = "normal" | "low" | "depleted";
export const BALANCE_STATES: BalanceState[] = ["normal", "low", "depleted"];

export interface AccountMeterRef {
  meter_id: string;
  utility: string;
  tariff_id: string;
}

// GET /v1/accounts (billing): one row of the operators' list.
export interface AccountRow {
  account_id: string;
  customer_id: string;
  customer_kind: string;
  status: string; // open or closed
  balance: string;
  currency: string;
  balance_state: BalanceState;
  meters: AccountMeterRef[];
  updated_at: string;
}

export interface AccountPage {
  items: AccountRow[];
  next: string | null; // the cursor of the next page (`after`), null on the last one
}

export interface MeterLink extends AccountMeterRef {
  linked_at: string;
  unlinked_at: string | null;
  active: boolean;
}

export interface AccountSettings {
  credit_limit: string;
  low_balance_amount: string;
  low_balance_days: number;
  restore_threshold: string;
  tier_size_factor: string;
  cut_off_policy_id: string | null;
  exemptions: { starts_at?: string; ends_at?: string; reason?: string }[];
}

// GET /v1/accounts/{id}
export interface Account {
  account_id: string;
  customer_id: string;
  customer_kind: string;
  currency: string;
  time_zone: string;
  billing_year_start: string;
  opened_at: string;
  status: string;
  closed_at: string | null;
  settings: AccountSettings;
  meters: MeterLink[]; // every link ever; `active` ones are paid for now
}

// GET /v1/accounts/{id}/balance
export interface Balance {
  account_id: string;
  balance: string;
  status: BalanceState;
  currency: string;
  settled_through: string | null;
  updated_at: string;
  days_left?: number | null; // not answered by billing today; shown when it is
}

// GET /v1/accounts/{id}/ledger
export interface LedgerEntry {
  event_id: string;
  event_type: string;
  recorded_at: string;
  business_day: string;
  amount: string;
  effect: string; // credit > 0, debit < 0
  currency: string;
  payload: Record<string, unknown>;
}

// GET /v1/accounts/{id}/settlements
export interface DailySettlement {
  account_id: string;
  settlement_date: string;
  time_zone: string;
  currency: string;
  opening_balance: string;
  charges_total: string;
  fixed_charges_total: string;
  payments_total: string;
  adjustments_total: string;
  closing_balance: string;
  consumption: { utility: string; quantity: string; unit: string }[];
}

// GET /v1/accounts/{id}/supply (commands): 404 while no balance event of the account reached commands.
export interface Supply {
  account_id: string;
  intent: "cut_off" | "restore";
  since: string;
  meter_ids: string[];
}

// POST /v1/payments (billing): the credit, the same one again for a repeated provider transaction id.
export interface Credit {
  event_id: string;
  event_type: string;
  recorded_at: string;
  account_id: string;
  amount: string;
  currency: string;
  channel?: string | null;
  provider_transaction_id?: string | null;
  paid_at?: string | null;
}

export type OrderState = "pending" | "paid" | "paid_late" | "expired";
export type Provider = "wechat_pay" | "alipay";
export const PROVIDERS: Provider[] = ["wechat_pay", "alipay"];

// Payment orders (billing): `checkout` says how the payer pays while the order is pending.
export interface PaymentOrder {
  order_id: string;
  account_id: string;
  amount: string;
  currency: string;
  provider: Provider;
  state: OrderState;
  created_at: string;
  expires_at: string;
  paid_at?: string | null;
  payment_event_id?: string | null;
  checkout: { kind: string; confirm_path?: string } | null;
}

export interface OrderList {
  items: PaymentOrder[];
}

// GET /v1/accounts/{id}/usage
export interface UsagePoint {
  start: string;
  consumption: string;
  amount: string;
}
export interface UsageSeries {
  meter_id: string;
  utility: string;
  unit: string;
  points: UsagePoint[];
}
export interface Usage {
  account_id: string;
  granularity: "day" | "month";
  time_zone?: string;
  currency?: string;
  series: UsageSeries[];
}

// notify's contacts
export type Channel = "sms" | "email" | "wechat";
export const CHANNELS: Channel[] = ["sms", "email", "wechat"];
// The topics a customer hears about (the operators' alarm topics are not theirs to opt out of).
export const CUSTOMER_TOPICS = [
  "balance_low",
  "low_balance_reminder",
  "balance_depleted",
  "balance_restored",
  "payment_receipt",
  "statement_issued",
] as const;

export interface ContactDetails {
  name: string | null;
  email: string | null;
  phone: string | null;
  wechat_openid: string | null;
  channels: Channel[];
  language: "zh-CN" | "en";
  quiet_start: string | null;
  quiet_end: string | null;
  time_zone: string | null;
  opted_out: string[];
}

export interface ContactRecord {
  contact_id: string;
  audience: string;
  account_id: string | null;
  role: string | null;
  site: string | null;
  contact: ContactDetails;
  updated_by: string;
  updated_at: string;
}

// --- Refusals --------------------------------------------------------------------------------------------------

// `call`, named as these pages know it (the shared client already reads the services' reason and problem code).
export const api = call;

// The answer with its status (201 created / 200 an earlier request's answer again).
export async function apiAnswer<T>(service: Service, path: string, options: CallOptions = {}): Promise<{ status: number; body: T }> {
  const answer = await raw(service, path, options);
  return { status: answer.status, body: (await answer.json()) as T };
}

export { problemOf, reasonOf };

// --- Decimal strings -------------------------------------------------------------------------------------------

const DECIMAL = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

// A decimal string without exponent ("0E-9" → "0.000000000", "1.5E+2" → "150").
export function plain(value: string): string {
  const m = DECIMAL.exec(value.trim());
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return value;
  const [, sign, whole, fraction = "", exponent] = m;
  let digits = (whole || "0") + fraction;
  let point = (whole || "0").length + Number(exponent ?? 0);
  if (point <= 0) {
    digits = "0".repeat(1 - point) + digits;
    point = 1;
  }
  if (point > digits.length) digits = digits.padEnd(point, "0");
  const head = digits.slice(0, point).replace(/^0+(?=\d)/, "");
  const tail = digits.slice(point);
  return `${sign === "-" ? "-" : ""}${head}${tail ? `.${tail}` : ""}`;
}

// Sums, comparisons and negation: the shared exact arithmetic (src/decimal.ts), under the names these pages use.
export const sumDecimals = (values: string[]): string => sum(values);
export const compareDecimals = compare;
export { negate };

// The change from `before` to `now` in percent, for showing only (a ratio, not money); null when before is 0.
export function percentChange(now: string, before: string): number | null {
  const b = Number(plain(before));
  if (!Number.isFinite(b) || b === 0) return null;
  return ((Number(plain(now)) - b) / Math.abs(b)) * 100;
}

export type AmountCheck = { amount: string; problem?: undefined } | { amount?: undefined; problem: "empty" | "format" | "places" | "zero" };

// An amount typed at the counter or on the phone: digits with at most 2 places, above zero; answered as the
// decimal string with exactly 2 places the API takes ("50" → "50.00").
export function checkAmount(text: string): AmountCheck {
  const value = text.trim().replace(/^¥\s*/, "");
  if (!value) return { problem: "empty" };
  const m = /^(\d{1,9})(?:\.(\d*))?$/.exec(value);
  if (!m) return { problem: "format" };
  const fraction = m[2] ?? "";
  if (fraction.length > 2) return { problem: "places" };
  const amount = `${m[1].replace(/^0+(?=\d)/, "")}.${fraction.padEnd(2, "0")}`;
  if (compareDecimals(amount, "0") <= 0) return { problem: "zero" };
  return { amount };
}

// What a counter receipt shows: a new payment (with the balance after it) or one reprinted from the ledger.
export interface ReceiptData {
  receipt_number: string;
  account_id: string;
  customer_id?: string;
  amount: string;
  currency: string;
  channel: string;
  paid_at: string;
  operator?: string;
  balance_after?: string;
  event_id: string;
  reprint?: boolean;
}

// --- Ids, tones, days ------------------------------------------------------------------------------------------

// crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
export function randomHex(bytes: number): string {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function idempotencyKey(): string {
  return `web-${Date.now().toString(36)}-${randomHex(8)}`;
}

// A counter receipt's number, which is also the payment's provider transaction id: a repeated submit of one
// receipt credits once (billing answers the first credit again).
export function receiptNumber(day: string, at: Date = new Date()): string {
  const time = `${String(at.getHours()).padStart(2, "0")}${String(at.getMinutes()).padStart(2, "0")}`;
  return `R${day.replace(/-/g, "")}-${time}-${randomHex(3).toUpperCase()}`;
}

export function stateTone(state: string | null | undefined): "ok" | "warn" | "bad" | "" {
  return state === "normal" ? "ok" : state === "low" ? "warn" : state === "depleted" ? "bad" : "";
}

export function signed(effect: string): string {
  return compareDecimals(effect, "0") > 0 ? `+${plain(effect)}` : plain(effect);
}

// "2026-11" → "2026-12"; months as YYYY-MM.
export function addMonths(month: string, months: number): string {
  const [y, m] = month.split("-").map(Number);
  const index = y * 12 + (m - 1) + months;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}`;
}

// The same calendar day a number of years away (29 February → 28 February).
export function addYears(day: string, years: number): string {
  const [y, m, d] = day.split("-").map(Number);
  const target = y + years;
  const last = new Date(Date.UTC(target, m, 0)).getUTCDate();
  return `${target}-${String(m).padStart(2, "0")}-${String(Math.min(d, last)).padStart(2, "0")}`;
}

// Months from `first` to `last` (YYYY-MM), newest first, at most `limit`.
export function monthsBetween(first: string, last: string, limit = 24): string[] {
  const found: string[] = [];
  for (let month = last; month >= first && found.length < limit; month = addMonths(month, -1)) found.push(month);
  return found;
}
