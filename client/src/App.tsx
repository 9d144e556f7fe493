import { QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";

import { History } from "./components/History";
import { ResultView, announcement, type ShownResult } from "./components/ResultView";
import { SignIn } from "./components/SignIn";
import { Upload } from "./components/Upload";
import { Api, SessionExpiredError } from "./lib/api";
import { configureAuth, currentUser, signOutEverywhere } from "./lib/auth";
import type { ClientConfig } from "./lib/config";
import { fromStored } from "./lib/shown";

type Session = { kind: "checking" } | { kind: "out"; notice?: string } | { kind: "in"; user: string };

const sessionOf = (user: string | null): Session => (user ? { kind: "in", user } : { kind: "out" });

export function App({ config }: { config: ClientConfig }) {
  const [session, setSession] = useState<Session>({ kind: "checking" });
  const [result, setResult] = useState<ShownResult | null>(null);
  // Bumped each time a result is shown: it is announced and its heading takes the focus.
  const [shownCount, setShownCount] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const api = useMemo(() => new Api(config), [config]);

  const expired = useCallback(() => {
    setResult(null);
    setSession({ kind: "out", notice: "Your session has expired. Sign in again." });
  }, []);
  const queryClient = useMemo(
    () =>
      new QueryClient({
        queryCache: new QueryCache({ onError: (e) => e instanceof SessionExpiredError && expired() }),
        defaultOptions: {
          queries: { retry: (count, e) => !(e instanceof SessionExpiredError) && count < 2 },
        },
      }),
    [expired],
  );

  const refresh = useCallback(() => currentUser().then((user) => setSession(sessionOf(user))), []);

  useEffect(() => {
    configureAuth(config);
    currentUser().then((user) => setSession(sessionOf(user)));
  }, [config]);

  function present(shown: ShownResult): void {
    setResult(shown);
    setShownCount((count) => count + 1);
  }

  function show(shown: ShownResult): void {
    present(shown);
    // A new stored result: the history shows it now, not at its next poll.
    void queryClient.invalidateQueries({ queryKey: ["results"] });
  }

  async function open(resultId: string): Promise<void> {
    setError(null);
    try {
      present(fromStored(await api.result(resultId)));
    } catch (caught) {
      if (caught instanceof SessionExpiredError) expired();
      else setError(caught instanceof Error ? caught.message : "Could not open the result.");
    }
  }

  async function downloadReport(resultId: string): Promise<void> {
    setError(null);
    try {
      const url = URL.createObjectURL(await api.structuredReport(resultId));
      const link = document.createElement("a");
      link.href = url;
      link.download = `${resultId}-sr.dcm`;
      link.click();
      URL.revokeObjectURL(url);
    } catch (caught) {
      if (caught instanceof SessionExpiredError) expired();
      else setError(caught instanceof Error ? caught.message : "Could not download the report.");
    }
  }

  async function signOut(): Promise<void> {
    await signOutEverywhere();
    queryClient.clear();
    setResult(null);
    setSession({ kind: "out" });
  }

  return (
    <QueryClientProvider client={queryClient}>
      <header className="top">
        <h1>Chest X-ray classifier</h1>
        {session.kind === "in" && (
          <div className="who">
            <span>Signed in as {session.user}</span>
            <button type="button" onClick={() => void signOut()}>
              Sign out
            </button>
          </div>
        )}
      </header>
      <div role="status" aria-live="polite" className="visually-hidden" data-testid="announcer">
        {result && shownCount > 0 ? announcement(result) : ""}
      </div>
      <main>
        {session.kind === "checking" && <p role="status">Loading…</p>}
        {session.kind === "out" && <SignIn onSignedIn={() => void refresh()} notice={session.notice} />}
        {session.kind === "in" && (
          <div className="workspace">
            <div className="left">
              <Upload api={api} onResult={show} onExpired={expired} />
              {error && <p role="alert">{error}</p>}
              {result && (
                <ResultView
                  result={result}
                  focusKey={shownCount}
                  onDownloadReport={(id) => void downloadReport(id)}
                />
              )}
            </div>
            <History api={api} onOpen={(id) => void open(id)} />
          </div>
        )}
      </main>
    </QueryClientProvider>
  );
}
