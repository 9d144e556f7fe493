/** The REST API (docs/api.md), with the caller's ID token. */
import type { components } from "../generated/api";
import { MAX_FILE_NAME } from "../generated/wire";
import { idToken } from "./auth";
import type { ClientConfig } from "./config";
import type { ImageKind } from "./files";

/** The API's shapes, generated from docs/openapi.json (functions/api/schema.py): one definition. */
type Schemas = components["schemas"];
export type Gate = Schemas["Gate"];
/** How far an answer can be trusted (model.serving.policy.confidence): "low" with its reasons, or "normal". */
export type Confidence = Schemas["Confidence"];
/** What a result shows of a DICOM's study (model.core.dicom.study_facts). */
export type Study = Schemas["Study"];
/** POST /classify's answer. */
export type Prediction = Schemas["Classification"];
export type StoredResult = Schemas["StoredResult"];
export type ResultPage = Schemas["ResultPage"];
export type UploadForm = Schemas["UploadForm"];

export interface ResultFilter {
  label?: string;
  status?: string;
  date?: string;
  key?: string;
}

/** An API answer that is not 2xx: its status, machine reason and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly gate?: Gate,
  ) {
    super(message);
  }
}

/** The session is gone (expired or signed out): the app goes back to sign-in. */
export class SessionExpiredError extends ApiError {}

export class Api {
  constructor(private readonly config: ClientConfig) {}

  private async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const token = await idToken();
    if (token === null) throw new SessionExpiredError(401, "session_expired", "Your session has expired.");
    let response: Response;
    try {
      response = await fetch(`${this.config.apiUrl}${path}`, {
        ...init,
        headers: { ...(init.headers ?? {}), Authorization: token },
      });
    } catch {
      throw new ApiError(0, "network", "The service could not be reached. Check your connection and retry.");
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.status === 401)
      throw new SessionExpiredError(401, "session_expired", "Your session has expired.");
    if (!response.ok) {
      const error = (body.error ?? {}) as { reason?: string; message?: string; gate?: Gate };
      throw new ApiError(
        response.status,
        error.reason ?? `http_${response.status}`,
        error.message ?? (body.message as string | undefined) ?? `The request failed (${response.status}).`,
        error.gate,
      );
    }
    return body as T;
  }

  classify(file: Blob, kind: ImageKind, name?: string): Promise<Prediction> {
    const query = new URLSearchParams({ explain: "true", store: "true" });
    if (name) query.set("name", name.slice(0, MAX_FILE_NAME));
    return this.request(`/classify?${query.toString()}`, {
      method: "POST",
      headers: { "Content-Type": kind },
      body: file,
    });
  }

  createUpload(kind: ImageKind, name?: string): Promise<UploadForm> {
    return this.request("/uploads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        content_type: kind,
        ...(name ? { file_name: name.slice(0, MAX_FILE_NAME) } : {}),
      }),
    });
  }

  result(id: string): Promise<StoredResult> {
    return this.request(`/results/${encodeURIComponent(id)}`);
  }

  /** The result's DICOM Structured Report, as a file to save. */
  async structuredReport(id: string): Promise<Blob> {
    const token = await idToken();
    if (token === null) throw new SessionExpiredError(401, "session_expired", "Your session has expired.");
    let response: Response;
    try {
      response = await fetch(`${this.config.apiUrl}/results/${encodeURIComponent(id)}/sr`, {
        headers: { Authorization: token, Accept: "application/dicom" },
      });
    } catch {
      throw new ApiError(0, "network", "The service could not be reached. Check your connection and retry.");
    }
    if (response.status === 401)
      throw new SessionExpiredError(401, "session_expired", "Your session has expired.");
    if (!response.ok)
      throw new ApiError(
        response.status,
        `http_${response.status}`,
        "The DICOM report could not be downloaded.",
      );
    return response.blob();
  }

  results(filter: ResultFilter, nextToken?: string | null, limit = 10): Promise<ResultPage> {
    const query = new URLSearchParams({ limit: String(limit) });
    for (const [name, value] of Object.entries(filter)) if (value) query.set(name, value);
    if (nextToken) query.set("next_token", nextToken);
    return this.request(`/results?${query.toString()}`);
  }
}

/** The presigned POST upload, with progress (fetch has no upload progress; XHR does). */
export function postForm(form: UploadForm, file: Blob, onProgress: (share: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
    data.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.url);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300
        ? resolve()
        : reject(new ApiError(xhr.status, "upload_failed", `The upload was refused (${xhr.status}).`));
    xhr.onerror = () =>
      reject(new ApiError(0, "network", "The upload failed: the storage could not be reached."));
    xhr.send(data);
  });
}
