/** Sign-in with Amplify's auth category only (no UI library), USER_PASSWORD_AUTH flow. */
import { Amplify } from "aws-amplify";
import { fetchAuthSession, signIn, signOut } from "aws-amplify/auth";

import type { ClientConfig } from "./config";

export function configureAuth(config: ClientConfig): void {
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

export async function signInWithPassword(username: string, password: string): Promise<void> {
  try {
    const result = await signIn({ username, password, options: { authFlowType: "USER_PASSWORD_AUTH" } });
    if (!result.isSignedIn) {
      throw new SignInError(`This account needs another step first (${result.nextStep.signInStep}).`);
    }
  } catch (error) {
    if (error instanceof SignInError) throw error;
    const name = error instanceof Error ? error.name : "";
    if (name === "NotAuthorizedException" || name === "UserNotFoundException") {
      throw new SignInError("Wrong email or password.");
    }
    throw new SignInError("Sign-in failed: the service could not be reached. Try again.");
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
