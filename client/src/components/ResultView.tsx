import { useEffect, useId, useRef, useState } from "react";

import type { Confidence, Gate } from "../lib/api";
import { LEGEND_GRADIENT, colourise, loadBitmap, lungMask, outline } from "../lib/heatmap";
import { reasonText } from "../lib/reasons";

export interface ShownResult {
  status: "classified" | "rejected" | "failed";
  label?: string;
  probabilities?: Record<string, number>;
  gate?: Gate | null;
  confidence?: Confidence | null;
  reason?: string;
  message?: string;
  modelName?: string;
  modelVersion?: string;
  covidThreshold?: number;
  previewSrc?: string;
  heatmapSrc?: string;
  /** The stored result whose DICOM Structured Report can be downloaded (the image came as DICOM). */
  reportId?: string;
}

const LABEL_NAMES: Record<string, string> = {
  covid: "COVID-19",
  no_findings: "No findings",
  pneumonia: "Pneumonia (other)",
};

export const labelName = (label: string): string => LABEL_NAMES[label] ?? label;

function Probabilities({ probabilities, label }: { probabilities: Record<string, number>; label?: string }) {
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  return (
    <ul className="bars" aria-label="Calibrated probabilities">
      {entries.map(([name, p]) => (
        <li key={name} className={name === label ? "bar predicted" : "bar"}>
          <span className="bar-name">
            {labelName(name)}
            {name === label ? " (predicted)" : ""}
          </span>
          <span className="bar-track" aria-hidden="true">
            <span className="bar-fill" style={{ width: `${(p * 100).toFixed(1)}%` }} />
          </span>
          <span className="bar-value" data-testid={`p-${name}`}>
            {(p * 100).toFixed(1)}%
          </span>
        </li>
      ))}
    </ul>
  );
}

function Heatmap({ previewSrc, heatmapSrc }: { previewSrc: string; heatmapSrc: string }) {
  const base = useRef<HTMLCanvasElement>(null);
  const overlay = useRef<HTMLCanvasElement>(null);
  const [opacity, setOpacity] = useState(0.5);
  const [shown, setShown] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [hasLungs, setHasLungs] = useState(false);
  const sliderId = useId();
  const toggleId = useId();

  useEffect(() => {
    let cancelled = false;
    Promise.all([loadBitmap(previewSrc), loadBitmap(heatmapSrc)])
      .then(([preview, heat]) => {
        if (cancelled || !base.current || !overlay.current) return;
        for (const canvas of [base.current, overlay.current]) {
          canvas.width = preview.width;
          canvas.height = preview.height;
        }
        base.current.getContext("2d")?.drawImage(preview, 0, 0);
        const small = document.createElement("canvas");
        small.width = heat.width;
        small.height = heat.height;
        const smallContext = small.getContext("2d");
        if (!smallContext) return;
        smallContext.drawImage(heat, 0, 0);
        const pixels = smallContext.getImageData(0, 0, heat.width, heat.height);
        const lungs = lungMask(pixels.data);
        pixels.data.set(colourise(pixels.data));
        smallContext.putImageData(pixels, 0, 0);
        const context = overlay.current.getContext("2d");
        if (!context) return;
        context.imageSmoothingEnabled = true;
        context.drawImage(small, 0, 0, preview.width, preview.height);
        if (lungs) {
          smallContext.putImageData(
            new ImageData(outline(lungs, heat.width, heat.height), heat.width, heat.height),
            0,
            0,
          );
          context.imageSmoothingEnabled = false;
          context.drawImage(small, 0, 0, preview.width, preview.height);
        }
        setHasLungs(lungs !== null);
      })
      .catch(() => !cancelled && setError("The image and its heatmap could not be loaded."));
    return () => {
      cancelled = true;
    };
  }, [previewSrc, heatmapSrc]);

  if (error) return <p role="alert">{error}</p>;
  return (
    <figure className="heatmap">
      <div className="layers">
        <canvas ref={base} data-testid="preview-canvas" aria-label="The image the model saw" role="img" />
        <canvas
          ref={overlay}
          data-testid="heatmap-canvas"
          role="img"
          aria-label="Heatmap: where the model looked for its answer"
          style={{ opacity: shown ? opacity : 0 }}
        />
      </div>
      <figcaption>
        <div className="controls">
          <input
            id={toggleId}
            type="checkbox"
            checked={shown}
            onChange={(event) => setShown(event.target.checked)}
          />
          <label htmlFor={toggleId}>Show heatmap</label>
          <label htmlFor={sliderId}>Opacity</label>
          <input
            id={sliderId}
            type="range"
            min={0}
            max={1}
            step={0.05}
            value={opacity}
            disabled={!shown}
            onChange={(event) => setOpacity(Number(event.target.value))}
          />
        </div>
        <div className="legend">
          <span>low</span>
          <span className="legend-bar" style={{ backgroundImage: LEGEND_GRADIENT }} aria-hidden="true" />
          <span>high</span>
          <span className="legend-text"> attention of the predicted class</span>
          {hasLungs && <span className="legend-text">White line: the outline of the lung fields.</span>}
        </div>
      </figcaption>
    </figure>
  );
}

const CONFIDENCE_REASONS: Record<string, string> = {
  not_validated_on_unseen_sources:
    "this model has not shown that it works on X-rays from hospitals it was not trained on, so its probabilities may not hold for yours",
  borderline: "the answer is close to the other one",
};

function LowConfidence({ reasons }: { reasons: string[] }) {
  return (
    <div className="low-confidence" role="note" data-testid="low-confidence">
      <strong>Low confidence</strong>
      <ul>
        {reasons.map((reason) => (
          <li key={reason}>{CONFIDENCE_REASONS[reason] ?? reason}</li>
        ))}
      </ul>
    </div>
  );
}

export function ResultView({
  result,
  onDownloadReport,
}: {
  result: ShownResult;
  onDownloadReport?: (resultId: string) => void;
}) {
  return (
    <section className="result" aria-labelledby="result-heading">
      <h2 id="result-heading">Result</h2>
      {result.status === "classified" && result.label ? (
        <>
          <p className="verdict">
            Model output: <strong data-testid="label">{labelName(result.label)}</strong>
          </p>
          {result.confidence?.level === "low" && <LowConfidence reasons={result.confidence.reasons} />}
          {result.probabilities && (
            <Probabilities probabilities={result.probabilities} label={result.label} />
          )}
        </>
      ) : (
        <div className="refusal" role="status">
          <p>
            <strong>{result.status === "failed" ? "Not classified (failed)" : "Not classified"}</strong>:{" "}
            <span data-testid="reason">{reasonText(result.reason)}</span>
          </p>
          {result.reason && <p className="reason-code">Reason code: {result.reason}</p>}
        </div>
      )}
      {result.gate && (
        <p className="gate">
          Input check score {result.gate.score.toFixed(2)}
          {result.gate.threshold !== null && ` (refused above ${result.gate.threshold.toFixed(2)})`}
        </p>
      )}
      {(result.modelName || result.modelVersion) && (
        <p className="model">
          Model: {result.modelName} {result.modelVersion}
        </p>
      )}
      {result.covidThreshold !== undefined && (
        <p className="model">
          COVID-19 is called at a probability of {(result.covidThreshold * 100).toFixed(1)}% or more (the
          model&apos;s operating point).
        </p>
      )}
      {result.previewSrc && result.heatmapSrc && (
        <Heatmap previewSrc={result.previewSrc} heatmapSrc={result.heatmapSrc} />
      )}
      {result.reportId && onDownloadReport && (
        <p>
          <button type="button" onClick={() => onDownloadReport(result.reportId as string)}>
            Download DICOM SR
          </button>{" "}
          (the answer as a DICOM Structured Report, for the PACS)
        </p>
      )}
      <p className="disclaimer">
        This is not a diagnosis and not a medical device: a research model's output, which can be wrong.
      </p>
    </section>
  );
}
