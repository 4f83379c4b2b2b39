// What the operations pages read and send, as the services' route functions and response models define them
// (vee: alarms_http.py, districts_http.py, http.py; commands: commands_http.py, batch_http.py, proposals_http.py,
// web.py; billing: tariffs_http.py, reports_http.py; ingest: registry_files.py). Decimals arrive as strings.
import { reasonOf } from "../../../api/client";
import { session } from "../../../api/session";

// ---- vee: consumption curves -------------------------------------------------------------------------------

export type Granularity = "hour" | "day" | "month";
export type GroupKind = "building" | "customer_type" | "district_metered_area";

export interface Bucket {
  start: string;
  end: string;
  consumption: string;
  unit: string;
  all_actual: boolean;
  complete: boolean;
  covered_share: string | null;
  estimated_share: string | null;
  meters?: number; // groups only: members with data in the bucket
  actual_meters?: number;
  complete_meters?: number;
}

// ---- vee: alarms and districts -----------------------------------------------------------------------------

export const SEVERITIES = ["critical", "warning", "info"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const ALARM_TYPES = [
  "continuous_flow",
  "burst",
  "backflow",
  "dry_pipe",
  "tamper",
  "no_consumption",
  "high_consumption",
  "low_consumption",
  "spike",
  "negative_consumption",
  "usage_on_inactive_meter",
  "clock_drift",
  "prolonged_estimation",
  "battery_low",
  "valve_abnormal",
  "district_imbalance",
  "night_flow",
  "no_communication",
  "unbilled_consumption",
] as const;

// The alarms page's state filter (vee's AlarmListState): acknowledged and unacknowledged are open alarms.
export const ALARM_FILTER_STATES = ["open", "unacknowledged", "acknowledged", "cleared"] as const;

export interface Alarm {
  alarm_id: string;
  alarm_type: string;
  severity: Severity | string;
  subject: "meter" | "district" | string;
  subject_id: string;
  utility: string;
  rule_id: string;
  detected_at: string;
  observed_value: string | null;
  threshold_value: string | null;
  value_unit: string | null;
  description: string;
  state: "open" | "cleared" | string;
  cleared_at: string | null;
  clear_reason: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  ack_note: string | null;
}

export interface District {
  district_id: string;
  name: string | null;
  inflow_meter_ids: string[];
  population: number | null;
  updated_by: string;
  updated_at: string;
}

export interface DistrictDay {
  day: string;
  day_start: string;
  day_end: string;
  inflow: string | null;
  customer_use: string | null;
  non_revenue: string | null;
  non_revenue_share: string | null;
  actual_coverage: string | null;
  provisional: boolean;
  customer_meters: number;
  night_hour_start: string | null;
  minimum_night_flow: string | null;
  legitimate_night_use: string | null;
  net_night_flow: string | null;
  night_baseline: string | null;
  night_alarm: boolean;
  evaluated_at: string;
}

// ---- commands ----------------------------------------------------------------------------------------------

export const COMMAND_STATES = [
  "requested",
  "scheduled",
  "dispatched",
  "acknowledged",
  "confirmed",
  "failed",
  "expired",
  "cancelled",
] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

// Not yet sent: the only states a command can be withdrawn from (core/lifecycle.py cancel()).
export const CANCELLABLE: readonly string[] = ["requested", "scheduled"];
export const FINAL: readonly string[] = ["confirmed", "failed", "expired", "cancelled"];

export const COMMAND_KINDS = [
  "valve_close",
  "valve_open",
  "relay_trip",
  "relay_close_allowed",
  "relay_close_direct",
  "read_now",
  "time_sync",
  "set_parameter",
] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

export const PRIORITIES = ["routine", "normal", "urgent"] as const;

export interface ParameterSetting {
  name: string;
  value: string;
}

export interface Command {
  command_id: string;
  device_id: string;
  kind: CommandKind | string;
  parameter: ParameterSetting | null;
  state: CommandState | string;
  reason: string;
  origin: string;
  requested_by: string;
  note: string | null;
  rule_id: string | null;
  account_id: string | null;
  operation_id: string | null;
  after_command_id: string | null;
  batch_id: string | null;
  idempotency_key: string | null;
  priority: string;
  requested_at: string;
  not_before: string | null;
  holds: string[];
  expires_at: string;
  attempt: number;
  send_at: string | null;
  dispatched_at: string | null;
  acknowledged_at: string | null;
  ended_at: string | null;
  detail: string | null;
  updated_at: string;
}

export interface CommandDetail extends Command {
  history: { event_type: string; recorded_at: string; payload: Record<string, unknown> }[];
}

export interface Submitted extends Command {
  duplicate: boolean;
  superseded: string[];
}

export interface BatchLine {
  device_id: string;
  kind: string;
  status: "accepted" | "duplicate" | "refused";
  command: Command | null;
  problem: string | null;
  reason: string | null;
}

export interface BatchAnswer {
  batch_id: string;
  accepted: number;
  duplicate: number;
  refused: number;
  lines: BatchLine[];
}

export const BATCH_MAX_LINES = 1000;

export interface Proposal {
  proposal_id: string;
  rule_id: string;
  device_id: string;
  kind: string;
  reason: string;
  priority: string;
  cause_id: string;
  detail: string;
  proposed_at: string;
  expires_at: string;
}

// ---- billing: tariffs --------------------------------------------------------------------------------------

export interface TariffTier {
  up_to: string | null;
  unit_price: string;
}
export interface RegisterPrice {
  register: string;
  unit_price: string;
}
export interface RecurringCharge {
  name: string;
  amount: string;
}
export interface TariffVersion {
  version_id: string;
  effective_from: string;
  tiers: TariffTier[];
  register_prices: RegisterPrice[];
  fixed_daily_charge: string;
  recurring_charges: RecurringCharge[];
}
export interface Tariff {
  tariff_id: string;
  utility: string;
  unit: string;
  currency: string;
  tier_period: string;
  versions: TariffVersion[];
}

export const UTILITIES = ["water", "electricity", "gas", "heat"] as const;
// amiflow_schemas.primitives.UNITS_BY_UTILITY
export const UNITS_BY_UTILITY: Record<string, string[]> = {
  water: ["m3"],
  gas: ["m3"],
  heat: ["GJ", "kWh", "MWh", "m3"],
  electricity: ["kWh", "kvarh"],
};
export const TIER_PERIODS = ["calendar_year", "billing_year", "month"] as const;
export const TOU_REGISTERS = ["T1", "T2", "T3", "T4"] as const;
export const MAX_TIERS = 16;

// ---- helpers -----------------------------------------------------------------------------------------------

// The reason a refusal gives, for the operator to read (the shared client's reading of it).
export { reasonOf };

// The name an action is recorded under: the logged-in user's (the services refuse an operator signing as someone
// else).
export function me(): string {
  return session.claims?.sub ?? "";
}

// A fresh random id (an idempotency key per confirmed click). crypto.randomUUID needs a secure context, and the
// console may be served over plain HTTP on a site network; getRandomValues does not.
export function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The ISO instant one microsecond after `iso` (the services' times carry microseconds; Date keeps only
// milliseconds). Used to read exactly the commands requested at one instant.
export function plusOneMicrosecond(iso: string): string {
  const micro = epochMicros(iso) + 1n;
  const whole = new Date(Number(micro / 1_000_000n) * 1000).toISOString().slice(0, 19);
  return `${whole}.${(micro % 1_000_000n).toString().padStart(6, "0")}+00:00`;
}

// Microseconds since the epoch of an ISO instant, exactly (for ordering times that differ below a millisecond).
export function epochMicros(iso: string): bigint {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$/.exec(iso);
  if (!m) return BigInt(Date.parse(iso) || 0) * 1000n;
  const seconds = BigInt(Date.parse(`${m[1]}${m[3] ?? "Z"}`)) / 1000n;
  return seconds * 1_000_000n + BigInt(((m[2] ?? "") + "000000").slice(0, 6));
}

// Tones of the shared stylesheet's badges (.badge.ok / .warn / .bad); status is always shown as text too.
export function severityTone(severity: string): "bad" | "warn" | "" {
  return severity === "critical" ? "bad" : severity === "warning" ? "warn" : "";
}

export function commandTone(state: string): "ok" | "warn" | "bad" | "" {
  if (state === "confirmed") return "ok";
  if (state === "failed" || state === "expired") return "bad";
  if (state === "cancelled") return "";
  return "warn";
}
