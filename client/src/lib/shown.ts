/** API answers -> what the result view shows. */
import type { ShownResult } from "../components/ResultView";
import type { ApiError, Prediction, StoredResult } from "./api";

export function fromPrediction(prediction: Prediction, fileName?: string): ShownResult {
  return {
    fileName,
    earlier: prediction.earlier,
    study: prediction.study,
    siteValidation: prediction.model.site_validation ?? "none",
    status: "classified",
    label: prediction.label,
    probabilities: prediction.probabilities,
    gate: prediction.gate,
    confidence: prediction.confidence,
    modelName: prediction.model.name,
    modelVersion: prediction.model.version,
    covidThreshold: prediction.model.covid_threshold,
    previewSrc: prediction.explanation && `data:image/png;base64,${prediction.explanation.preview.b64}`,
    heatmapSrc: prediction.explanation && `data:image/png;base64,${prediction.explanation.heatmap.b64}`,
  };
}

export function fromRefusal(error: ApiError): ShownResult {
  return { status: "rejected", reason: error.reason, message: error.message, gate: error.gate };
}

export function fromStored(result: StoredResult): ShownResult {
  return {
    status: result.status,
    label: result.label,
    probabilities: result.probabilities,
    gate: result.gate,
    confidence: result.confidence,
    reason: result.reason,
    modelName: result.model_name,
    modelVersion: result.model_version,
    covidThreshold: result.covid_threshold,
    previewSrc: result.explanation?.preview_url,
    heatmapSrc: result.explanation?.heatmap_url,
    reportId: result.structured_report ? result.result_id : undefined,
    siteValidation: result.site_validation,
    fileName: result.file_name,
    study: result.study,
    createdAt: result.created_at,
  };
}

/** What the history's File column says of a result: its file name, else where it came from. */
export function fileOf(result: StoredResult): string {
  if (result.file_name) return result.file_name;
  if (result.key) return result.key.split("/").pop() ?? result.key;
  return result.source === "api" ? "(sent without a name)" : "(from the bucket)";
}
