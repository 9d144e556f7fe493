import { fireEvent, render, screen } from "@testing-library/react";
import { vi } from "vitest";

import { ResultView, announcement } from "./ResultView";

describe("ResultView", () => {
  it("shows the label, each probability as text and the model", () => {
    render(
      <ResultView
        result={{
          status: "classified",
          label: "covid",
          probabilities: { covid: 0.9661, no_findings: 0.0031, pneumonia: 0.0308 },
          gate: { score: 1.21, threshold: 2.48 },
          modelName: "xray-covid",
          modelVersion: "v1",
          covidThreshold: 0.31,
        }}
      />,
    );
    expect(screen.getByText(/it answers COVID-19 from 31 % on/)).toBeInTheDocument();
    expect(screen.getByText(/a probability of 97 %/)).toBeInTheDocument();
    expect(screen.getByTestId("label")).toHaveTextContent("COVID-19");
    expect(screen.getByTestId("p-covid")).toHaveTextContent("96.6%");
    expect(screen.getByTestId("p-pneumonia")).toHaveTextContent("3.1%");
    expect(screen.getByText(/COVID-19 \(predicted\)/)).toBeInTheDocument();
    expect(screen.getByText("xray-covid v1")).toBeInTheDocument();
    expect(screen.getByText(/not a diagnosis and not a medical device/)).toBeInTheDocument();
  });

  it("keeps the technical details one click away", () => {
    render(
      <ResultView
        result={{
          status: "classified",
          label: "covid",
          probabilities: { covid: 0.9, no_findings: 0.1 },
          gate: { score: 1.3, threshold: 1.88 },
          modelName: "xray-covid",
          modelVersion: "v1",
          siteValidation: "none",
        }}
      />,
    );
    const details = screen.getByText("Technical details").closest("details") as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details).toHaveTextContent("score 1.30, refused above 1.88");
    expect(details).toHaveTextContent("Not validated at your site");
    fireEvent.click(screen.getByText("Technical details"));
    expect(details.open).toBe(true);
  });

  it("shows the file and the DICOM study it came from", () => {
    render(
      <ResultView
        result={{
          status: "classified",
          label: "covid",
          fileName: "chest-7.dcm",
          study: { study_date: "2026-12-01", modality: "DX", view: "PA", body_part: "CHEST" },
        }}
      />,
    );
    const facts = screen.getByTestId("facts");
    for (const text of ["chest-7.dcm", "2026-12-01", "DX", "PA", "CHEST"])
      expect(facts).toHaveTextContent(text);
  });

  it("says so when the same image had been sent before", () => {
    render(<ResultView result={{ status: "classified", label: "covid", earlier: true }} />);
    expect(screen.getByTestId("earlier")).toHaveTextContent("You had sent this image before");
  });

  it("moves the focus to its heading each time a result is shown", () => {
    const { rerender } = render(
      <ResultView result={{ status: "classified", label: "covid" }} focusKey={1} />,
    );
    expect(document.activeElement).toBe(screen.getByRole("heading", { name: "Result" }));
    (document.activeElement as HTMLElement).blur();
    rerender(<ResultView result={{ status: "rejected", reason: "empty" }} focusKey={2} />);
    expect(document.activeElement).toBe(screen.getByRole("heading", { name: "Result" }));
  });

  it("announces the answer in one sentence", () => {
    expect(
      announcement({ status: "classified", label: "covid", confidence: { level: "low", reasons: [] } }),
    ).toBe("Result: COVID-19, with low confidence.");
    expect(announcement({ status: "rejected", reason: "not_frontal" })).toBe(
      "Result: not classified. The DICOM is a lateral view; the model reads frontal views only.",
    );
  });

  it("explains a gate refusal in plain words with its score", () => {
    render(
      <ResultView
        result={{ status: "rejected", reason: "not_a_chest_xray", gate: { score: 2.71, threshold: 2.48 } }}
      />,
    );
    expect(screen.getByTestId("reason")).toHaveTextContent("does not look like a frontal chest X-ray");
    expect(screen.getByText(/score 2.71, refused above 2.48/)).toBeInTheDocument();
    expect(screen.queryByTestId("label")).toBeNull();
  });

  it("says when an answer is of low confidence, and why", () => {
    render(
      <ResultView
        result={{
          status: "classified",
          label: "no_findings",
          probabilities: { covid: 0.4, no_findings: 0.5, pneumonia: 0.1 },
          confidence: { level: "low", reasons: ["not_validated_on_unseen_sources", "borderline"] },
        }}
      />,
    );
    const note = screen.getByTestId("low-confidence");
    expect(note).toHaveTextContent("Low confidence.");
    expect(note).toHaveTextContent("hospitals it was not trained on");
    expect(note).toHaveTextContent("close to the other one");
  });

  it("shows no confidence note for a normal answer", () => {
    render(
      <ResultView
        result={{
          status: "classified",
          label: "covid",
          probabilities: { covid: 0.95, no_findings: 0.03, pneumonia: 0.02 },
          confidence: { level: "normal", reasons: [] },
        }}
      />,
    );
    expect(screen.queryByTestId("low-confidence")).toBeNull();
  });

  it("offers the DICOM SR of a result that has one, and only then", () => {
    const download = vi.fn();
    const { rerender } = render(
      <ResultView
        result={{ status: "classified", label: "covid", reportId: "r-1" }}
        onDownloadReport={download}
      />,
    );
    fireEvent.click(screen.getByRole("button", { name: "Download DICOM SR" }));
    expect(download).toHaveBeenCalledWith("r-1");
    rerender(<ResultView result={{ status: "classified", label: "covid" }} onDownloadReport={download} />);
    expect(screen.queryByRole("button", { name: "Download DICOM SR" })).toBeNull();
  });
});
