import { useQuery } from "@tanstack/react-query";
import { useId, useState } from "react";

import { LABELS } from "../generated/wire";
import { Api, type ResultFilter, type StoredResult } from "../lib/api";
import { fileOf } from "../lib/shown";
import { labelName } from "./ResultView";

const REFRESH_MS = 5000;

function answerOf(item: StoredResult): string {
  if (item.status === "classified" && item.label) return labelName(item.label);
  return item.status === "failed" ? "Failed" : "Not classified";
}

export function History({ api, onOpen }: { api: Api; onOpen: (resultId: string) => void }) {
  const [filter, setFilter] = useState<ResultFilter>({});
  const [tokens, setTokens] = useState<(string | null)[]>([null]);
  const token = tokens[tokens.length - 1] ?? null;
  const ids = { label: useId(), status: useId(), date: useId() };
  const query = useQuery({
    queryKey: ["results", filter, token],
    queryFn: () => api.results(filter, token),
    refetchInterval: REFRESH_MS,
  });

  function choose(change: ResultFilter): void {
    // The API takes one filter at a time: choosing one clears the others.
    setFilter(change);
    setTokens([null]);
  }

  return (
    <section aria-labelledby="history-heading" className="history">
      <h2 id="history-heading">Your results</h2>
      <div className="filters">
        <span className="filter">
          <label htmlFor={ids.label}>Answer</label>
          <select
            id={ids.label}
            value={filter.label ?? ""}
            onChange={(e) => choose({ label: e.target.value || undefined })}
          >
            <option value="">any</option>
            {LABELS.map((label) => (
              <option key={label} value={label}>
                {labelName(label)}
              </option>
            ))}
          </select>
        </span>
        <span className="filter">
          <label htmlFor={ids.status}>Status</label>
          <select
            id={ids.status}
            value={filter.status ?? ""}
            onChange={(e) => choose({ status: e.target.value || undefined })}
          >
            <option value="">any</option>
            <option value="classified">classified</option>
            <option value="rejected">rejected</option>
            <option value="failed">failed</option>
          </select>
        </span>
        <span className="filter">
          <label htmlFor={ids.date}>Date</label>
          <input
            id={ids.date}
            type="date"
            value={filter.date ?? ""}
            onChange={(e) => choose({ date: e.target.value || undefined })}
          />
        </span>
      </div>
      {query.isError && (
        <p role="alert">{query.error instanceof Error ? query.error.message : "Could not load."}</p>
      )}
      {query.isPending && <p role="status">Loading…</p>}
      {query.data && query.data.items.length === 0 && <p>No results yet.</p>}
      {query.data && query.data.items.length > 0 && (
        <div className="table-scroll">
          <table>
            <caption className="visually-hidden">Results, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">File</th>
                <th scope="col">Answer</th>
                <th scope="col">
                  <span className="visually-hidden">Open</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {query.data.items.map((item) => {
                const when = new Date(item.created_at).toLocaleString();
                return (
                  <tr key={item.result_id} data-testid="history-row">
                    <td>{when}</td>
                    <td className="file-name" data-testid="history-file">
                      {fileOf(item)}
                    </td>
                    <td className="label-name">{answerOf(item)}</td>
                    <td>
                      <button type="button" onClick={() => onOpen(item.result_id)}>
                        Open<span className="visually-hidden"> the result of {when}</span>
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <div className="pages">
        <button type="button" disabled={tokens.length === 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </button>
        <button
          type="button"
          disabled={!query.data?.next_token}
          onClick={() => query.data?.next_token && setTokens([...tokens, query.data.next_token])}
        >
          Next page
        </button>
      </div>
    </section>
  );
}
