// The native API on this origin. The session is an HttpOnly cookie the scripts never see; the
// CSRF value the server derived from it is in a readable cookie and goes back in X-CSRF-Token on
// every call that changes data (docs/adr/0008-browser-sessions.md).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const CSRF_COOKIE = "__Host-osmcloud_csrf";
let onSignedOut: () => void = () => {};

/** Called when any call answers 401: the session ended (signed out elsewhere, device logged out). */
export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return rest.join("=");
  }
  return "";
}

function headersFor(method: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { Accept: "application/json", ...extra };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  return headers;
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = "http_" + response.status;
  let message = response.statusText || "request failed";
  let details: Record<string, unknown> = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      ({ code = code, message = message, ...details } = body.error);
    }
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, message, details);
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: headersFor(method) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "the server could not be reached; check your connection and try again");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !path.startsWith("/api/auth/login-codes") && !path.includes("sessions")) {
      onSignedOut();
    }
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Path of a file in the API: the type, then the name with its sub-folders kept. */
export function filePath(type: string, name: string): string {
  return `/api/files/${encodeURIComponent(type)}/${name.split("/").map(encodeURIComponent).join("/")}`;
}

export interface UploadOptions {
  baseVersion?: string;
  overwrite?: boolean;
  onProgress?: (loaded: number, total: number) => void;
}

/** PUT of a file's new version with upload progress (fetch has none): XMLHttpRequest. */
export function upload(type: string, name: string, file: Blob, options: UploadOptions = {}): Promise<FileVersion> {
  const query = new URLSearchParams();
  if (options.baseVersion) query.set("base_version", options.baseVersion);
  if (options.overwrite) query.set("overwrite", "true");
  if (file instanceof File && file.lastModified) query.set("clienttime", String(file.lastModified));
  const url = filePath(type, name) + (query.toString() ? "?" + query : "");
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.withCredentials = true;
    for (const [k, v] of Object.entries(headersFor("PUT", { "Content-Type": "application/octet-stream" }))) {
      xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => options.onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was cut off; check your connection and try again"));
    xhr.onload = () => {
      let body: any = undefined;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body as FileVersion);
      if (xhr.status === 401) onSignedOut();
      const e = body?.error ?? {};
      const { code = "http_" + xhr.status, message = xhr.statusText || "upload failed", ...details } = e;
      reject(new ApiError(xhr.status, code, message, details));
    };
    xhr.send(file);
  });
}

// ---- what the services answer (the parts the app reads) ------------------------------------

export interface FileVersion {
  type: string;
  name: string;
  version_id: string;
  size: number;
  checksum?: string | null;
  updatetime: number;
  clienttime?: number | null;
  device_id?: string | null;
  deleted: boolean;
  category?: string;
}

export interface Device {
  id: string;
  name: string;
  brand: string;
  model: string;
  platform: string;
  created_at: string;
  last_seen_at: string;
  this_device: boolean;
}

export interface Account {
  user_id: string;
  email: string;
  created_at: string;
  devices: Device[];
}

export interface Usage {
  used_bytes: number;
  file_count: number;
  quota_bytes: number;
  max_files: number | null;
  max_file_bytes: number | null;
  reserved_bytes: number;
  plan: string | null;
}

export interface StorageType {
  type: string;
  category: string;
  used_bytes: number;
  file_count: number;
  backup_enabled: boolean;
  allowed_by_plan: boolean;
}

export interface Storage {
  used_bytes: number;
  file_count: number;
  quota_bytes: number;
  free_bytes: number;
  max_files: number | null;
  plan: string | null;
  categories: { category: string; used_bytes: number; file_count: number }[];
  types: StorageType[];
}

export interface TrashItem {
  id: string;
  type: string;
  name: string;
  category: string;
  size: number;
  deleted_at: string;
  expires_at: string;
  last_version_id: string;
}

export interface Trash {
  total_items: number;
  total_bytes: number;
  months: { month: string; items: TrashItem[] }[];
}

export interface BillingAccount {
  plan: string;
  status: string;
  expires_at: string | null;
  grace_until: string | null;
  usage: unknown;
  orders: { order_id?: string; product_id?: string; platform?: string; expires_at?: string }[];
}
