/** The REST API (docs/api.md), with the caller's ID token. */
import { MAX_FILE_NAME } from "../generated/wire";
import { idToken } from "./auth";
import type { ClientConfig } from "./config";
import type { ImageKind } from "./files";

export interface Gate {
  score: number;
  threshold: number | null;
}

/** How far an answer can be trusted (model.serving.policy.confidence): "low" with its reasons, or "normal". */
export interface Confidence {
  level: "low" | "normal";
  reasons: string[];
}

/** What a result shows of a DICOM's study (model.core.dicom.study_facts). */
export interface Study {
  study_date?: string;
  modality?: string;
  view?: string;
  body_part?: string;
}

export interface Prediction {
  label: string;
  probabilities: Record<string, number>;
  gate?: Gate | null;
  confidence?: Confidence | null;
  model: {
    name?: string;
    version?: string;
    labels?: string[];
    covid_threshold?: number;
    site_validation?: string;
  };
  result_id?: string;
  /** The same image had been stored before (POST /classify?store=true): its first result stands. */
  earlier?: boolean;
  study?: Study;
  explanation?: { preview: { b64: string }; heatmap: { b64: string } };
}

export interface StoredResult {
  result_id: string;
  status: "classified" | "rejected" | "failed";
  label?: string;
  probabilities?: Record<string, number>;
  gate?: Gate;
  confidence?: Confidence;
  reason?: string;
  model_name?: string;
  model_version?: string;
  covid_threshold?: number;
  created_at: string;
  source?: string;
  key?: string;
  scope?: string;
  explanation?: { preview_url: string; heatmap_url: string };
  /** The result also exists as a DICOM Structured Report (the image came as DICOM). */
  structured_report?: boolean;
  site_validation?: string;
  study?: Study;
  /** The name of the file sent with it: only its owner sees it. */
  file_name?: string;
}

export interface ResultPage {
  items: StoredResult[];
  next_token: string | null;
}

export interface UploadForm {
  url: string;
  fields: Record<string, string>;
  key: string;
  max_bytes: number;
}

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
