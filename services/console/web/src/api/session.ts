// Who is logged in: the access token identity issued, and the claims the pages use to decide what to show.
// The services decide what is allowed; these claims only keep the pages from offering what would be refused.
import { computed, reactive } from "vue";

export type Role = "platform_admin" | "tenant_admin" | "operator" | "integrator" | "auditor" | "customer";
export type Permission = "read" | "ingest" | "operate" | "configure" | "audit" | "manage_access" | "own_account";

export interface Claims {
  sub: string;
  tenant: string;
  roles: Role[];
  exp: number;
  account_id?: string | null;
  sites?: string[];
  duties?: string[];
  scope?: string;
}

// The same table as amiflow_runtime/auth.py (ROLE_PERMISSIONS).
const ROLE_PERMISSIONS: Record<Role, Permission[]> = {
  platform_admin: ["read", "ingest", "operate", "configure", "audit", "manage_access", "own_account"],
  tenant_admin: ["read", "ingest", "operate", "configure", "audit", "manage_access"],
  operator: ["read", "operate"],
  integrator: ["read", "ingest"],
  auditor: ["read", "audit"],
  customer: ["own_account"],
};

// sessionStorage: a reload keeps the login, another tab or a closed browser does not.
const STORAGE_KEY = "amiflow.session";

interface Stored {
  token: string;
  claims: Claims;
}

function decode(token: string): Claims {
  const part = token.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes)) as Claims;
}

function load(): Stored | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const stored = JSON.parse(raw) as Stored;
    return stored.claims.exp * 1000 > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

export const session = reactive<{ token: string | null; claims: Claims | null; expired: boolean }>({
  token: null,
  claims: null,
  expired: false,
});

const initial = load();
if (initial) {
  session.token = initial.token;
  session.claims = initial.claims;
}

let expiryTimer: number | undefined;

function watchExpiry(): void {
  window.clearTimeout(expiryTimer);
  if (!session.claims) return;
  const left = session.claims.exp * 1000 - Date.now();
  expiryTimer = window.setTimeout(() => expire(), Math.max(0, left));
}
watchExpiry();

export function signIn(token: string): Claims {
  const claims = decode(token);
  session.token = token;
  session.claims = claims;
  session.expired = false;
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ token, claims } satisfies Stored));
  watchExpiry();
  return claims;
}

export function signOut(): void {
  window.clearTimeout(expiryTimer);
  session.token = null;
  session.claims = null;
  sessionStorage.removeItem(STORAGE_KEY);
}

// The token ran out (people's tokens live 15 minutes): back to the login page, saying why.
export function expire(): void {
  signOut();
  session.expired = true;
}

export function permissions(claims: Claims | null): Set<Permission> {
  const granted = new Set<Permission>();
  for (const role of claims?.roles ?? []) for (const p of ROLE_PERMISSIONS[role] ?? []) granted.add(p);
  return granted;
}

export const can = (permission: Permission): boolean => permissions(session.claims).has(permission);
export const isCustomer = computed(
  () => !!session.claims && session.claims.roles.length === 1 && session.claims.roles[0] === "customer",
);
export const loggedIn = computed(() => !!session.token && !!session.claims);
