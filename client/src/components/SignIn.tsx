import { useId, useState, type FormEvent } from "react";

import { SignInError, signInWithPassword } from "../lib/auth";

export function SignIn({ onSignedIn, notice }: { onSignedIn: () => void; notice?: string }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const emailId = useId();
  const passwordId = useId();

  async function submit(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await signInWithPassword(String(data.get("email")), String(data.get("password")));
      onSignedIn();
    } catch (caught) {
      setError(caught instanceof SignInError ? caught.message : "Sign-in failed.");
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="signin" onSubmit={(event) => void submit(event)} aria-labelledby="signin-heading">
      <h2 id="signin-heading">Sign in</h2>
      {notice && <p role="status">{notice}</p>}
      <label htmlFor={emailId}>Email</label>
      <input id={emailId} name="email" type="email" autoComplete="username" required />
      <label htmlFor={passwordId}>Password</label>
      <input id={passwordId} name="password" type="password" autoComplete="current-password" required />
      <button type="submit" disabled={busy}>
        {busy ? "Signing in…" : "Sign in"}
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}
