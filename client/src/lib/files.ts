/** What the browser checks before anything is sent: the type by its first bytes, and the size. */
export type ImageKind = "image/png" | "image/jpeg" | "application/dicom";

import { SYNC_MAX_BYTES, UPLOAD_MAX_BYTES } from "../generated/wire";

// POST /classify takes up to SYNC_MAX_BYTES; larger images go through a presigned upload.
export { SYNC_MAX_BYTES, UPLOAD_MAX_BYTES };

export function kindOf(head: Uint8Array): ImageKind | null {
  if (head.length >= 8 && [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => head[i] === b)) {
    return "image/png";
  }
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
  if (head.length >= 132 && String.fromCharCode(...head.subarray(128, 132)) === "DICM")
    return "application/dicom";
  return null;
}

export type FileCheck =
  { ok: true; kind: ImageKind; route: "classify" | "upload" } | { ok: false; message: string };

export function checkFile(head: Uint8Array, size: number): FileCheck {
  if (size === 0) return { ok: false, message: "The file is empty." };
  const kind = kindOf(head);
  if (kind === null) {
    return {
      ok: false,
      message: "This is not a PNG, JPEG or DICOM image. Choose a chest X-ray in one of those.",
    };
  }
  if (size > UPLOAD_MAX_BYTES) {
    return {
      ok: false,
      message: `The file is ${(size / 1048576).toFixed(1)} MB; the limit is ${UPLOAD_MAX_BYTES / 1048576} MB.`,
    };
  }
  return { ok: true, kind, route: size <= SYNC_MAX_BYTES ? "classify" : "upload" };
}

export async function readHead(file: Blob, bytes = 132): Promise<Uint8Array> {
  return new Uint8Array(await file.slice(0, bytes).arrayBuffer());
}
