/** Rejection reasons (docs/api.md "Rejection reasons") in plain words. */
const REASONS: Record<string, string> = {
  not_a_chest_xray: "This does not look like a frontal chest X-ray, so the model did not answer.",
  not_upright: "This looks like a chest X-ray turned on its side or upside down. Upload it upright.",
  no_lung_fields:
    "No pair of lungs was found in this image, so the model did not answer: it reads frontal chest X-rays only.",
  not_an_image: "The file is not a PNG, JPEG or DICOM image.",
  unsupported_type: "This image format is not supported; use PNG, JPEG or DICOM.",
  empty: "The file is empty.",
  too_large: "The image is too large.",
  too_small: "The image is too small (at least 32 pixels a side).",
  truncated: "The file is cut off before the image ends.",
  decompression_bomb: "The file would take far more memory or time to decode than an X-ray needs.",
  object_missing: "The upload was deleted before it was read.",
  upload_form_reused: "This upload form had already been used for another image; each form uploads one.",
  rate_limited: "Too many requests from your account. Wait a moment and try again.",
  unsupported_transfer_syntax: "This DICOM compression cannot be read.",
  multi_frame: "The DICOM has more than one frame.",
  unsupported_photometric: "The DICOM is not a grayscale image.",
  unsupported_modality: "The DICOM is not a radiograph (CR or DX).",
  not_frontal: "The DICOM is a lateral view; the model reads frontal views only.",
  not_chest: "The DICOM is not of the chest.",
  no_pixel_data: "The DICOM holds no image (a directory, report or other non-image object).",
  invalid_dicom: "The DICOM header is malformed and cannot be read.",
  decode_timeout: "Decoding the image took too long. Try again later, or upload it instead.",
  endpoint_unavailable: "The model is busy or unavailable. Try again in a moment.",
  model_rejected: "The model refused this image.",
};

/** Whether a reason has plain words of its own (else the general sentence is shown). */
export const hasWords = (reason: string): boolean => reason in REASONS;

export function reasonText(reason: string | undefined): string {
  return (reason && REASONS[reason]) || "The image could not be classified.";
}
