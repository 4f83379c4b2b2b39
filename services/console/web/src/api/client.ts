// Calls to the services' APIs through the console's same-origin proxy (/api/<service>/...).
import { expire, session } from "./session";
import { currentLocale } from "../i18n";

export type Service = "identity" | "ingest" | "vee" | "billing" | "commands" | "notify";
export type Query = Record<string, string | number | boolean | null | undefined | (string | number)[]>;

// A refusal as the services answer it: {"problem", "reason"} or FastAPI's {"detail"} (422: "errors").
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: string,
    readonly reason: string,
    readonly body: unknown,
  ) {
    super(reason || problem || `HTTP ${status}`);
  }
}

// What to tell the user of a failed call: the service's reason, else its problem code, else the status.
export function reasonOf(exc: unknown): string {
  if (exc instanceof ApiError) return exc.reason || exc.problem || `HTTP ${exc.status}`;
  return exc instanceof Error ? exc.message || String(exc) : String(exc);
}

export function problemOf(exc: unknown): string | null {
  return exc instanceof ApiError ? exc.problem : null;
}

export interface CallOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  query?: Query;
  body?: unknown;
  form?: URLSearchParams;
  reason?: string; // why an operator acts: recorded in the audit trail (X-Amiflow-Reason)
  signal?: AbortSignal;
}

export function url(service: Service, path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) params.append(key, String(one));
  }
  const qs = params.toString();
  return `/api/${service}${path.startsWith("/") ? path : `/${path}`}${qs ? `?${qs}` : ""}`;
}

function refusalOf(status: number, body: unknown): { problem: string; reason: string } {
  if (body && typeof body === "object") {
    let b = body as Record<string, unknown>;
    // The services answer their own refusals as {"detail": {"problem", "reason"}}; FastAPI's as {"detail": "…"}.
    if (b.detail && typeof b.detail === "object" && !Array.isArray(b.detail)) b = { ...b, ...(b.detail as object), detail: undefined };
    const errors = Array.isArray(b.errors)
      ? (b.errors as { location?: string; reason?: string }[]).map((e) => `${e.location}: ${e.reason}`).join("; ")
      : "";
    const detail = typeof b.detail === "string" ? b.detail : b.detail ? JSON.stringify(b.detail) : "";
    // Some refusals list what failed (e.g. a tariff's checks) beside their reason.
    const checks = Array.isArray(b.checks) ? ` ${b.checks.join(", ")}` : "";
    const reason = ((typeof b.reason === "string" && b.reason) || errors || detail || b.error_description || "") + checks;
    return { problem: String(b.problem ?? b.error ?? status), reason: String(reason ?? "") };
  }
  return { problem: String(status), reason: typeof body === "string" ? body : "" };
}

export async function raw(service: Service, path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json", "Accept-Language": currentLocale() };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (options.reason) headers["X-Amiflow-Reason"] = encodeURIComponent(options.reason);
  let body: BodyInit | undefined;
  if (options.form) {
    body = options.form;
    headers["Content-Type"] = "application/x-www-form-urlencoded";
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(url(service, path, options.query), {
    method: options.method ?? (body ? "POST" : "GET"),
    headers,
    body,
    signal: options.signal,
  });
  if (!answer.ok) {
    const text = await answer.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    const { problem, reason } = refusalOf(answer.status, parsed);
    // An expired or revoked token: log in again (the login page says why).
    if (answer.status === 401 && session.token && service !== "identity") expire();
    throw new ApiError(answer.status, problem, reason, parsed);
  }
  return answer;
}

export async function call<T>(service: Service, path: string, options: CallOptions = {}): Promise<T> {
  const answer = await raw(service, path, options);
  if (answer.status === 204) return undefined as T;
  return (await answer.json()) as T;
}

// A file the API builds (statement PDF, report XLSX/CSV): fetched with the token, handed to the browser as a
// download under the name the service gives in Content-Disposition.
export async function download(service: Service, path: string, query?: Query, fallbackName = "download"): Promise<void> {
  const answer = await raw(service, path, { query });
  const blob = await answer.blob();
  const disposition = answer.headers.get("content-disposition") ?? "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

export async function login(username: string, password: string): Promise<string> {
  const form = new URLSearchParams({ grant_type: "password", username, password });
  const answer = await call<{ access_token: string }>("identity", "/oauth/token", { form });
  return answer.access_token;
}
