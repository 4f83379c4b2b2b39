// The fleet pages' view of the services: ingest's registry and head-end, vee's consumption, commands, and the
// accounts billing keeps. Shapes follow the services' response models (decimals arrive as strings).
import { ApiError, call, type Query } from "../../../api/client";
import type { TopologyNode } from "../../../components/FleetTopologyTree.vue";

export type Utility = "water" | "electricity" | "gas" | "heat";
export type MeterStatus = "active" | "removed";

export interface GeoLocation {
  latitude: string;
  longitude: string;
}

export interface DeviceStatus {
  valve?: string | null; // open | closed | abnormal
  relay?: string | null; // connected | disconnected | close_allowed
  battery?: { level: string; voltage_v?: string | null; remaining_percent?: number | null } | string | null;
  alarms?: string[] | null;
  reported_at?: string | null;
  clock_drift_s?: number | null;
  signal_csq?: number | null;
}

export type MeterConnection = "online" | "offline" | "never_seen";
export type LinkState = "online" | "offline" | "never_connected";

export interface Meter {
  meter_id: string;
  utility: Utility;
  profile: string;
  bus_address: string;
  multiplier: string;
  dial_count: number | null;
  unit: string;
  installation_date: string | null;
  installation_reading: string | null;
  installed_at: string | null;
  premise: string | null;
  room: string | null;
  location: GeoLocation | null;
  groups: { building: string | null; customer_type: string | null; district_metered_area: string | null };
  di_order: string | null;
  schedule: { kind: string; at_local: string | null; jitter_s: number } | null;
  gateway_id: string | null;
  channel: string | null;
  status: MeterStatus;
  replaces_meter_id: string | null;
  removal: { removed_at: string; removal_reading: string | null; replaced_by_meter_id: string | null } | null;
  revision: number;
  // Computed by ingest (GET /v1/meters…; absent from older servers): the connection state (null: removed), the
  // DTU or concentrator whose link carries the meter, the last reading accepted and the last status report.
  connection?: MeterConnection | null;
  online?: boolean;
  link_gateway_id?: string | null;
  last_reading_received_at?: string | null;
  last_reading_measured_at?: string | null;
  device_status?: DeviceStatus | null;
}

export interface MeterPage {
  meters: Meter[];
  next_after: string | null;
}

export interface Connection {
  online: boolean;
  remote_address: string | null;
  connected_at: string | null;
  disconnected_at: string | null;
  last_seen_at: string | null;
  frames_in: number;
  instance: string;
}

export type GatewayKind = "dtu" | "concentrator" | "collector";

export interface Gateway {
  gateway_id: string;
  kind: GatewayKind;
  registration_id: string | null;
  model: string | null;
  firmware: string | null;
  parent_gateway_id: string | null;
  channel: string | null;
  maintenance: "in_service" | "maintenance" | "retired";
  revision: number;
  connection?: Connection | null; // the link row (GET /v1/gateways/{id}, roots of the topology); null: never connected
  link_state?: LinkState | null; // the link carrying it now (a collector's is its parent's); null: retired
  online?: boolean | null;
}

export interface GatewayPage {
  gateways: Gateway[];
  next_after: string | null;
}

export interface SimCard {
  iccid: string;
  imsi: string | null;
  msisdn: string | null;
  carrier: string | null;
  data_plan: string | null;
  quota_bytes: number | null;
  used_bytes: number | null;
  expires_on: string | null;
  gateway_id: string | null;
  revision: number;
}

export interface SimCardHistory extends SimCard {
  change: string;
  changed: string[];
  recorded_at: string;
}

export interface SimCardPage {
  sim_cards: SimCard[];
  next_after: string | null;
}

export interface Topology {
  gateway: Gateway;
  parent: Gateway | null;
  children: Gateway[];
  meters: Meter[];
  sim_cards: SimCard[];
}

export interface Position {
  meter_id: string;
  utility: Utility;
  latitude: string | number;
  longitude: string | number;
  building: string | null;
  status: MeterStatus;
  online: boolean;
  connection?: MeterConnection | null; // null: removed
}

export interface PositionPage {
  items: Position[];
  bounds?: { min_lat: string; max_lat: string; min_lon: string; max_lon: string } | null; // first page only
  located?: number | null; // first page only: located meters over all pages
  next_after: string | null;
}

// GET /v1/topology: a page of roots (DTUs, concentrators), each with its SIM card and collectors.
export interface TopologyMeter {
  meter_id: string;
  utility: Utility;
  bus_address: string;
  gateway_id: string | null;
  channel: string | null;
  premise: string | null;
  room: string | null;
  building: string | null;
  connection: MeterConnection | null;
  online: boolean;
}

export interface TenantTopology {
  roots: {
    gateway: Gateway;
    sim_card: SimCard | null;
    meter_count: number;
    meters: TopologyMeter[];
    collectors: { gateway: Gateway; meter_count: number; meters: TopologyMeter[] }[];
  }[];
  next_after: string | null;
  without_gateway: { count: number; meters: TopologyMeter[]; next_after: string | null } | null;
}

export interface ConsumptionBucket {
  start: string;
  end: string;
  consumption: string;
  unit: string;
  all_actual: boolean;
  complete: boolean;
  covered_share: string | null;
  estimated_share: string | null;
}

export interface ValidatedReading {
  event_id: string;
  meter_id: string;
  measured_at: string;
  version: number;
  status: string; // actual | estimated | edited | failed | missing
  method: string | null;
  consumption: string | null;
  unit: string | null;
  registers: { register: string; value: string; unit: string }[];
  checks: string[];
  reason: string | null;
  recorded_at: string;
}

export interface MeterTotal {
  meter_id: string;
  utility: string;
  unit: string;
  consumption: string | null;
}

export interface TotalsPage {
  period_start: string;
  period_end: string;
  items: MeterTotal[];
  next: string | null;
}

export interface AccountItem {
  account_id: string;
  customer_id: string;
  status: string;
  balance: string;
  currency: string;
  balance_state: "normal" | "low" | "depleted" | string;
  meters: { meter_id: string; utility: string; tariff_id: string }[];
}

export interface AccountPage {
  items: AccountItem[];
  next: string | null;
}

// Commands: the states of services/commands (commands/core/model.py CommandState).
export type CommandState =
  | "requested"
  | "scheduled"
  | "dispatched"
  | "acknowledged"
  | "confirmed"
  | "failed"
  | "expired"
  | "cancelled";

export const FINAL_STATES: ReadonlySet<CommandState> = new Set(["confirmed", "failed", "expired", "cancelled"]);
export const CANCELLABLE: ReadonlySet<CommandState> = new Set(["requested", "scheduled"]);

export interface Command {
  command_id: string;
  device_id: string;
  kind: string;
  state: CommandState;
  reason: string;
  origin: string;
  requested_by: string;
  note: string | null;
  requested_at: string;
  not_before: string | null;
  expires_at: string;
  attempt: number;
  send_at: string | null;
  dispatched_at: string | null;
  acknowledged_at: string | null;
  ended_at: string | null;
  detail: string | null;
  updated_at: string;
}

export interface SubmittedCommand extends Command {
  duplicate: boolean;
  superseded: string[];
}

export interface CommandHistoryEntry {
  event_type: string;
  recorded_at: string;
  payload: Record<string, unknown>;
}

export interface CommandDetail extends Command {
  history: CommandHistoryEntry[];
}

// ---- calls ----

export const enc = encodeURIComponent;

// Building, premise and room in one line, without saying a part twice (a premise often names its building and room).
export function placeOf(m: { premise: string | null; room: string | null; groups: { building: string | null } }): string {
  const premise = m.premise ?? "";
  const parts = [
    m.groups.building && !premise.includes(m.groups.building) ? m.groups.building : null,
    m.premise,
    m.room && !premise.includes(m.room) ? m.room : null,
  ];
  return parts.filter(Boolean).join(" · ") || "—";
}

export function meterPage(query: Query): Promise<MeterPage> {
  return call<MeterPage>("ingest", "/v1/meters", { query });
}

export function meter(id: string): Promise<Meter> {
  return call<Meter>("ingest", `/v1/meters/${enc(id)}`);
}

// A device the registry does not know answers 404: for a search, that is "not found", not a failure.
export async function meterOrNull(id: string): Promise<Meter | null> {
  try {
    return await meter(id);
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 404 || exc.status === 422)) return null;
    throw exc;
  }
}

export function gateway(id: string): Promise<Gateway> {
  return call<Gateway>("ingest", `/v1/gateways/${enc(id)}`);
}

export function topology(id: string): Promise<Topology> {
  return call<Topology>("ingest", `/v1/gateways/${enc(id)}/topology`);
}

// Whether a meter is online as the console shows it: ingest's own verdict when it gives one.
export type OnlineState = "online" | "offline" | "never_seen" | "removed" | "unknown";

export function meterOnline(m: Pick<Meter, "status" | "connection">): OnlineState {
  if (m.status === "removed") return "removed";
  return m.connection ?? "unknown";
}

// The link that carries a gateway now (ingest's link_state: a collector never connects by itself, its parent's
// link carries it); the link row when only that is known.
export function gatewayOnline(g: Gateway): OnlineState {
  if (g.maintenance === "retired") return "removed";
  if (g.link_state) return g.link_state === "never_connected" ? "never_seen" : g.link_state;
  if (g.connection) return g.connection.online ? "online" : "offline";
  return g.kind === "collector" ? "unknown" : "never_seen";
}

export const ONLINE_TONE: Record<OnlineState, string> = {
  online: "ok",
  offline: "bad",
  never_seen: "warn",
  removed: "",
  unknown: "",
};

// ---- commands a meter can be asked to do ----
// The commands service has no capability route; it derives a device's kinds from the profile's protocol family
// and utility (services/commands/commands/core/capabilities.py) unless the tenant states more. The page offers
// the same defaults, plus what the meter's last status shows it has (a valve state means a valve), and shows the
// service's 422 reason when it refuses.

export interface RemoteAction {
  kind: string; // the CommandKind sent
  testid: string; // command-<testid>
  actuator: "valve" | "relay";
  cuts: boolean; // cuts supply off: asks for confirmation in red
}

export const VALVE_ACTIONS: RemoteAction[] = [
  { kind: "valve_close", testid: "valve_close", actuator: "valve", cuts: true },
  { kind: "valve_open", testid: "valve_open", actuator: "valve", cuts: false },
];
export const RELAY_ACTIONS: RemoteAction[] = [
  { kind: "relay_trip", testid: "relay_trip", actuator: "relay", cuts: true },
  // DL/T 645 "close allowed": the customer presses the meter's button to restore supply (the standard close).
  { kind: "relay_close_allowed", testid: "relay_close", actuator: "relay", cuts: false },
];

export function remoteActions(m: Meter): RemoteAction[] {
  if (m.status === "removed") return [];
  const family = m.profile.split("-", 1)[0].toLowerCase();
  const status = m.device_status ?? null;
  const valve =
    (family === "cjt188" && (m.utility === "water" || m.utility === "gas")) || !!(status && status.valve);
  const relay = (family === "dlt645" && m.utility === "electricity") || !!(status && status.relay);
  return [...(valve ? VALVE_ACTIONS : []), ...(relay ? RELAY_ACTIONS : [])];
}

// A random id for an idempotency key. crypto.randomUUID exists only in secure contexts (https, localhost);
// the console may be served over plain http inside a utility's network, where getRandomValues still works.
export function randomId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- topology as a tree ----

export function meterNode(m: Meter, carrier: OnlineState): TopologyNode {
  const own = meterOnline(m);
  const inherited = own === "unknown";
  const place = placeOf(m);
  return {
    id: m.meter_id,
    kind: "meter",
    state: inherited ? carrier : own,
    inherited,
    to: `/console/meters/${enc(m.meter_id)}`,
    channel: m.channel,
    note: place === "—" ? null : place,
    children: [],
  };
}

// The gateway (a DTU or concentrator, or a collector under its parent) with its collectors and their meters.
export function topologyTree(t: Topology, root: Gateway, parent: Gateway | null): TopologyNode {
  const carrierGateway = root.kind === "collector" && parent ? parent : root;
  const carrier = gatewayOnline(carrierGateway);
  const gatewayNode = (g: Gateway, children: TopologyNode[]): TopologyNode => ({
    id: g.gateway_id,
    kind: g.kind,
    state: g.kind === "collector" && !g.link_state ? carrier : gatewayOnline(g),
    inherited: g.kind === "collector",
    to: `/console/gateways/${enc(g.gateway_id)}`,
    channel: g.channel,
    note: g.connection?.remote_address ?? null,
    maintenance: g.maintenance,
    children,
  });
  const metersOn = (id: string) => t.meters.filter((m) => m.gateway_id === id).map((m) => meterNode(m, carrier));
  const collectors = t.children.map((c) => gatewayNode(c, metersOn(c.gateway_id)));
  const own = gatewayNode(root, [...collectors, ...metersOn(root.gateway_id)]);
  return root.kind === "collector" && parent ? gatewayNode(parent, [own]) : own;
}

// A page of the tenant's topology (counts only: ?meters=false) as trees of DTUs and their collectors.
export function tenantTrees(page: TenantTopology): TopologyNode[] {
  return page.roots.map((root) => ({
    id: root.gateway.gateway_id,
    kind: root.gateway.kind,
    state: gatewayOnline(root.gateway),
    to: `/console/gateways/${enc(root.gateway.gateway_id)}`,
    note: root.gateway.connection?.remote_address ?? null,
    maintenance: root.gateway.maintenance,
    meterCount: root.meter_count,
    sim: root.sim_card?.iccid ?? null,
    children: root.collectors.map((c) => ({
      id: c.gateway.gateway_id,
      kind: c.gateway.kind,
      state: gatewayOnline(c.gateway),
      inherited: true,
      to: `/console/gateways/${enc(c.gateway.gateway_id)}`,
      channel: c.gateway.channel,
      maintenance: c.gateway.maintenance,
      meterCount: c.meter_count,
      children: [],
    })),
  }));
}
