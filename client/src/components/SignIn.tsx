import { useId, useState, type FormEvent } from "react";

import { SignInError, confirmStep, signInWithPassword, type SignInStep } from "../lib/auth";

type PendingStep = Exclude<SignInStep, { kind: "done" }>;

/** The password, then whatever Cognito asks next: a TOTP code, its first-time setup, a new password. */
export function SignIn({ onSignedIn, notice }: { onSignedIn: () => void; notice?: string }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [step, setStep] = useState<PendingStep | null>(null);
  const [email, setEmail] = useState("");
  const emailId = useId();
  const passwordId = useId();
  const answerId = useId();

  async function submit(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const next =
        step === null
          ? await signInWithPassword(String(data.get("email")), String(data.get("password")))
          : await confirmStep(String(data.get("answer")).trim(), email);
      if (next.kind === "done") onSignedIn();
      else setStep(next);
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
      {step === null ? (
        <>
          <label htmlFor={emailId}>Email</label>
          <input
            id={emailId}
            name="email"
            type="email"
            autoComplete="username"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
          <label htmlFor={passwordId}>Password</label>
          <input id={passwordId} name="password" type="password" autoComplete="current-password" required />
        </>
      ) : (
        <StepFields step={step} answerId={answerId} />
      )}
      <button type="submit" disabled={busy}>
        {busy ? "Signing in…" : step === null ? "Sign in" : "Continue"}
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

function StepFields({ step, answerId }: { step: PendingStep; answerId: string }) {
  if (step.kind === "new-password") {
    return (
      <>
        <p>Your account was created with a temporary password. Choose your own.</p>
        <label htmlFor={answerId}>New password</label>
        <input id={answerId} name="answer" type="password" autoComplete="new-password" required />
      </>
    );
  }
  return (
    <>
      {step.kind === "totp-setup" && (
        <div role="group" aria-label="Set up an authenticator app">
          <p>
            This account needs an authenticator app. Add this key to it (or open the link on the device that
            has the app), then enter the code it shows.
          </p>
          <p>
            Key: <code>{step.secret}</code>
          </p>
          <p>
            <a href={step.uri}>Add to an authenticator app</a>
          </p>
        </div>
      )}
      <label htmlFor={answerId}>Code from your authenticator app</label>
      <input
        id={answerId}
        name="answer"
        inputMode="numeric"
        autoComplete="one-time-code"
        pattern="[0-9]{6}"
        maxLength={6}
        required
      />
    </>
  );
}
