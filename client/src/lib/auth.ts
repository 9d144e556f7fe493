/** Sign-in with Amplify's auth category only (no UI library).
 *
 * SRP on AWS: the password never leaves the browser, so the deployed app client allows no
 * USER_PASSWORD_AUTH; the local stack (moto) asks for USER_PASSWORD_AUTH in its config.json. The
 * steps Cognito may ask for after the password are answered here: a TOTP code from an authenticator
 * app (MfaConfiguration ON or OPTIONAL), its first-time setup, and a new password for an
 * administrator-created user. */
import { Amplify } from "aws-amplify";
import { confirmSignIn, fetchAuthSession, signIn, signOut, type SignInOutput } from "aws-amplify/auth";

import type { AuthFlow, ClientConfig } from "./config";

let authFlow: AuthFlow = "USER_SRP_AUTH";

/** What the user must give next to finish signing in. */
export type SignInStep =
  | { kind: "done" }
  | { kind: "totp" }
  | { kind: "totp-setup"; secret: string; uri: string }
  | { kind: "new-password" };

const APP_NAME = "X-ray classifier";

export function configureAuth(config: ClientConfig): void {
  authFlow = config.authFlow;
  Amplify.configure({
    Auth: {
      Cognito: {
        userPoolId: config.userPoolId,
        userPoolClientId: config.userPoolClientId,
        ...(config.cognitoEndpoint ? { userPoolEndpoint: config.cognitoEndpoint } : {}),
        loginWith: { email: true },
      },
    },
  });
}

export class SignInError extends Error {}

export function nextStep(result: SignInOutput, username: string): SignInStep {
  if (result.isSignedIn) return { kind: "done" };
  const step = result.nextStep;
  switch (step.signInStep) {
    case "DONE":
      return { kind: "done" };
    case "CONFIRM_SIGN_IN_WITH_TOTP_CODE":
      return { kind: "totp" };
    case "CONTINUE_SIGN_IN_WITH_TOTP_SETUP":
      return {
        kind: "totp-setup",
        secret: step.totpSetupDetails.sharedSecret,
        uri: step.totpSetupDetails.getSetupUri(APP_NAME, username).toString(),
      };
    case "CONFIRM_SIGN_IN_WITH_NEW_PASSWORD_REQUIRED":
      return { kind: "new-password" };
    default:
      throw new SignInError(`This account needs a step this app does not offer (${step.signInStep}).`);
  }
}

function failure(error: unknown): SignInError {
  if (error instanceof SignInError) return error;
  const name = error instanceof Error ? error.name : "";
  if (name === "NotAuthorizedException" || name === "UserNotFoundException") {
    return new SignInError("Wrong email or password.");
  }
  if (name === "CodeMismatchException" || name === "EnableSoftwareTokenMFAException") {
    return new SignInError("That code is wrong or has expired. Enter the current code from your app.");
  }
  if (name === "InvalidPasswordException") {
    return new SignInError("The new password does not meet the password policy.");
  }
  return new SignInError("Sign-in failed: the service could not be reached. Try again.");
}

export async function signInWithPassword(username: string, password: string): Promise<SignInStep> {
  try {
    return nextStep(await signIn({ username, password, options: { authFlowType: authFlow } }), username);
  } catch (error) {
    throw failure(error);
  }
}

/** Answer the step ``signInWithPassword`` returned: a TOTP code, or the new password. */
export async function confirmStep(response: string, username: string): Promise<SignInStep> {
  try {
    return nextStep(await confirmSignIn({ challengeResponse: response }), username);
  } catch (error) {
    throw failure(error);
  }
}

/** The current ID token, refreshed if needed; null when there is no valid session. */
export async function idToken(): Promise<string | null> {
  try {
    const session = await fetchAuthSession();
    return session.tokens?.idToken?.toString() ?? null;
  } catch {
    return null;
  }
}

export async function currentUser(): Promise<string | null> {
  try {
    const session = await fetchAuthSession();
    const payload = session.tokens?.idToken?.payload;
    return payload ? String(payload.email ?? payload["cognito:username"] ?? "") : null;
  } catch {
    return null;
  }
}

/** Amplify's default token store: localStorage keys under this prefix. */
const TOKEN_PREFIX = "CognitoIdentityServiceProvider.";

/** Sign out, and leave no token behind even when the server cannot revoke it (the local stack's
 * Cognito, moto, has no RevokeToken; a network failure would do the same on AWS). */
export async function signOutEverywhere(): Promise<void> {
  try {
    await signOut();
  } catch {
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(TOKEN_PREFIX)) localStorage.removeItem(key);
    }
  }
}
