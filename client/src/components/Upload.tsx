import { useId, useRef, useState, type DragEvent } from "react";

import { Api, ApiError, SessionExpiredError, postForm } from "../lib/api";
import { checkFile, readHead } from "../lib/files";
import { fromPrediction, fromRefusal, fromStored } from "../lib/shown";
import type { ShownResult } from "./ResultView";

const POLL_MS = 1500;
const WAIT_MS = 120_000;

type Phase =
  { kind: "idle" } | { kind: "busy"; text: string; progress?: number } | { kind: "error"; text: string };

export function Upload({
  api,
  onResult,
  onExpired,
}: {
  api: Api;
  onResult: (result: ShownResult) => void;
  onExpired: () => void;
}) {
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const [dragging, setDragging] = useState(false);
  const [sent, setSent] = useState<string | null>(null);
  // The picker stays enabled while a file is classified (disabling it would drop the focus to the page):
  // a second file chosen meanwhile is turned away, in words.
  const busy = useRef(false);
  const inputId = useId();

  async function waitForStored(key: string, fileName: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      setPhase({
        kind: "busy",
        text: "Uploaded. Waiting for the result (you can leave; it will be in your history)…",
      });
      const page = await api.results({ key });
      // Every stored result of the key is final (classified, rejected or failed); the newest comes first.
      const done = page.items[0];
      if (done) {
        onResult({ ...fromStored(await api.result(done.result_id)), fileName });
        setPhase({ kind: "idle" });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    setPhase({ kind: "error", text: "No result yet. It will appear in your history when it is ready." });
  }

  async function handle(file: File): Promise<void> {
    if (busy.current) {
      setPhase((current) =>
        current.kind === "busy"
          ? {
              ...current,
              text: `${current.text} One file at a time: choose ${file.name} again when this one is done.`,
            }
          : current,
      );
      return;
    }
    busy.current = true;
    try {
      await send(file);
    } finally {
      busy.current = false;
    }
  }

  async function send(file: File): Promise<void> {
    setSent(file.name);
    const check = checkFile(await readHead(file), file.size);
    if (!check.ok) {
      setPhase({ kind: "error", text: check.message });
      return;
    }
    try {
      if (check.route === "classify") {
        setPhase({ kind: "busy", text: `Classifying ${file.name}…` });
        onResult(fromPrediction(await api.classify(file, check.kind, file.name), file.name));
        setPhase({ kind: "idle" });
        return;
      }
      setPhase({ kind: "busy", text: `Uploading ${file.name}…`, progress: 0 });
      const form = await api.createUpload(check.kind, file.name);
      await postForm(form, file, (share) =>
        setPhase({ kind: "busy", text: `Uploading ${file.name}…`, progress: share }),
      );
      await waitForStored(form.key, file.name);
    } catch (error) {
      if (error instanceof SessionExpiredError) {
        onExpired();
      } else if (error instanceof ApiError && error.status === 400 && error.reason !== "network") {
        onResult(fromRefusal(error));
        setPhase({ kind: "idle" });
      } else {
        setPhase({ kind: "error", text: error instanceof Error ? error.message : "Something went wrong." });
      }
    }
  }

  function onDrop(event: DragEvent<HTMLDivElement>): void {
    event.preventDefault();
    setDragging(false);
    const file = event.dataTransfer.files[0];
    if (file) void handle(file);
  }

  return (
    <section aria-labelledby="upload-heading" className="upload">
      <h2 id="upload-heading">Classify a chest X-ray</h2>
      <div
        className={dragging ? "dropzone dragging" : "dropzone"}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <label htmlFor={inputId}>Choose a PNG, JPEG or DICOM file, or drop it here</label>
        <input
          id={inputId}
          type="file"
          accept=".png,.jpg,.jpeg,.dcm,image/png,image/jpeg,application/dicom"
          aria-describedby={sent ? `${inputId}-sent` : undefined}
          onChange={(event) => {
            const file = event.target.files?.[0];
            if (file) void handle(file);
            event.target.value = "";
          }}
        />
        {sent && (
          <p id={`${inputId}-sent`} className="sent">
            Last file sent: <span className="file-name">{sent}</span>
          </p>
        )}
      </div>
      <div aria-live="polite" role="status" className="status">
        {phase.kind === "busy" && <p>{phase.text}</p>}
      </div>
      {phase.kind === "busy" && phase.progress !== undefined && (
        <label className="progress">
          Upload progress
          <progress max={1} value={phase.progress}>
            {Math.round(phase.progress * 100)}%
          </progress>
        </label>
      )}
      {phase.kind === "error" && (
        <p role="alert" className="error">
          {phase.text}
        </p>
      )}
    </section>
  );
}
