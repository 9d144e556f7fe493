import { fireEvent, render, screen } from "@testing-library/react";
import { vi } from "vitest";

import { ResultView } from "./ResultView";

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
    expect(screen.getByText(/called at a probability of 31.0% or more/)).toBeInTheDocument();
    expect(screen.getByTestId("label")).toHaveTextContent("COVID-19");
    expect(screen.getByTestId("p-covid")).toHaveTextContent("96.6%");
    expect(screen.getByTestId("p-pneumonia")).toHaveTextContent("3.1%");
    expect(screen.getByText(/COVID-19 \(predicted\)/)).toBeInTheDocument();
    expect(screen.getByText("Model: xray-covid v1")).toBeInTheDocument();
    expect(screen.getByText(/not a diagnosis and not a medical device/)).toBeInTheDocument();
  });

  it("explains a gate refusal in plain words with its score", () => {
    render(
      <ResultView
        result={{ status: "rejected", reason: "not_a_chest_xray", gate: { score: 2.71, threshold: 2.48 } }}
      />,
    );
    expect(screen.getByTestId("reason")).toHaveTextContent("does not look like a frontal chest X-ray");
    expect(screen.getByText(/score 2.71 \(refused above 2.48\)/)).toBeInTheDocument();
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
    expect(note).toHaveTextContent("Low confidence");
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
