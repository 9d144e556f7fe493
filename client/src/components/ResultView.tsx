import { useEffect, useRef } from "react";

import type { Confidence, Gate, Study } from "../lib/api";
import { percent } from "../lib/format";
import { reasonText } from "../lib/reasons";
import { Viewer } from "./Viewer";

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
  /** The site whose validation stands behind the model (after site adaptation), or "none". */
  siteValidation?: string;
  /** The name of the file sent, as its owner sees it. */
  fileName?: string;
  study?: Study;
  /** The same image had been stored before: this is the first time's result. */
  earlier?: boolean;
  createdAt?: string;
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

const CONFIDENCE_REASONS: Record<string, string> = {
  not_validated_on_unseen_sources:
    "This model has not shown that it works on X-rays from hospitals it was not trained on, so its probabilities may not hold for yours.",
  borderline: "The answer is close to the other one.",
};

/** What a screen reader is told when a result arrives: its answer in one sentence. */
export function announcement(result: ShownResult): string {
  if (result.status === "classified" && result.label) {
    const sure = result.confidence?.level === "low" ? ", with low confidence" : "";
    return `Result: ${labelName(result.label)}${sure}.`;
  }
  return `Result: not classified. ${reasonText(result.reason)}`;
}

function HowSure({ result }: { result: ShownResult }) {
  const label = result.label as string;
  const p = result.probabilities?.[label];
  if (p === undefined) return null;
  const low = result.confidence?.level === "low";
  return (
    <div
      className={low ? "how-sure low-confidence" : "how-sure"}
      data-testid={low ? "low-confidence" : undefined}
    >
      <p>
        <strong>{low ? "Low confidence." : "Normal confidence."}</strong> The model gives {labelName(label)} a
        probability of {percent(p)}
        {label === "covid" && result.covidThreshold !== undefined
          ? `; it answers COVID-19 from ${percent(result.covidThreshold)} on, the point chosen when it was validated.`
          : "."}
      </p>
      {low && (
        <ul>
          {(result.confidence?.reasons ?? []).map((reason) => (
            <li key={reason}>{CONFIDENCE_REASONS[reason] ?? reason}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Named values as a definition list: what the result shows beside its answer, and its details. */
function FactList({
  facts,
  className,
  testId,
}: {
  facts: [string, string][];
  className?: string;
  testId?: string;
}) {
  return (
    <dl className={className} data-testid={testId}>
      {facts.map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

function StudyFacts({ result }: { result: ShownResult }) {
  const study = result.study ?? {};
  const facts = [
    ["File", result.fileName],
    ["Study date", study.study_date],
    ["Modality", study.modality],
    ["View", study.view],
    ["Body part", study.body_part],
  ].filter((fact): fact is [string, string] => Boolean(fact[1]));
  if (facts.length === 0) return null;
  return <FactList facts={facts} className="facts" testId="facts" />;
}

function Details({ result }: { result: ShownResult }) {
  const rows: [string, string][] = [];
  if (result.gate) {
    const refused =
      result.gate.threshold !== null ? `, refused above ${result.gate.threshold.toFixed(2)}` : "";
    rows.push([
      "Input check",
      `How unlike the chest X-rays the model was trained on: score ${result.gate.score.toFixed(2)}${refused}.`,
    ]);
  }
  if (result.reason) rows.push(["Reason code", result.reason]);
  if (result.modelName || result.modelVersion)
    rows.push(["Model", [result.modelName, result.modelVersion].filter(Boolean).join(" ")]);
  if (result.covidThreshold !== undefined)
    rows.push([
      "Operating point",
      `COVID-19 at a probability of ${(result.covidThreshold * 100).toFixed(1)} % or more`,
    ]);
  if (result.siteValidation)
    rows.push([
      "Validation",
      result.siteValidation === "none"
        ? "Not validated at your site (no site adaptation)."
        : `Validated at site ${result.siteValidation} after site adaptation.`,
    ]);
  if (rows.length === 0) return null;
  return (
    <details className="details">
      <summary>Technical details</summary>
      <FactList facts={rows} />
    </details>
  );
}

export function ResultView({
  result,
  focusKey,
  onDownloadReport,
}: {
  result: ShownResult;
  /** Changes each time a result is shown: the heading takes the focus then. */
  focusKey?: number;
  onDownloadReport?: (resultId: string) => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (focusKey) heading.current?.focus();
  }, [focusKey]);
  return (
    <section className="result" aria-labelledby="result-heading">
      <h2 id="result-heading" ref={heading} tabIndex={-1}>
        Result
      </h2>
      {result.earlier && (
        <p className="note" data-testid="earlier">
          You had sent this image before: this is the result of the first time. The same image always gets the
          same result, so no new row was added to your history.
        </p>
      )}
      <StudyFacts result={result} />
      {result.status === "classified" && result.label ? (
        <>
          <p className="verdict">
            The model&apos;s answer:{" "}
            <strong data-testid="label" className="label-name">
              {labelName(result.label)}
            </strong>
          </p>
          <HowSure result={result} />
          {result.probabilities && (
            <Probabilities probabilities={result.probabilities} label={result.label} />
          )}
        </>
      ) : (
        <div className="refusal">
          <p>
            <strong>{result.status === "failed" ? "Not classified (it failed)" : "Not classified"}.</strong>{" "}
            <span data-testid="reason">{reasonText(result.reason)}</span>
          </p>
        </div>
      )}
      {result.previewSrc && result.heatmapSrc && (
        <Viewer key={result.previewSrc} previewSrc={result.previewSrc} heatmapSrc={result.heatmapSrc} />
      )}
      <Details result={result} />
      {result.reportId && onDownloadReport && (
        <p>
          <button type="button" onClick={() => onDownloadReport(result.reportId as string)}>
            Download DICOM SR
          </button>{" "}
          (the answer as a DICOM Structured Report, for the PACS)
        </p>
      )}
      <p className="disclaimer">
        This is not a diagnosis and not a medical device: a research model&apos;s output, which can be wrong.
      </p>
    </section>
  );
}
