/** The deployment the client talks to, read at start from `config.json` next to the app.
 *
 * Locally the local stack writes it from `.local/outputs.json`; for AWS,
 * `python -m local_stack.client_config --stack-name NAME` writes it from the stack's Outputs. */
/** How the password is proven: SRP on AWS; plain USER_PASSWORD_AUTH only against the local stack. */
export type AuthFlow = "USER_SRP_AUTH" | "USER_PASSWORD_AUTH";

export interface ClientConfig {
  apiUrl: string;
  region: string;
  userPoolId: string;
  userPoolClientId: string;
  /** Only locally: the Cognito-compatible endpoint (moto) that Amplify talks to instead of AWS. */
  cognitoEndpoint?: string;
  authFlow: AuthFlow;
}

const REQUIRED: (keyof ClientConfig)[] = ["apiUrl", "region", "userPoolId", "userPoolClientId"];

export function parseConfig(value: unknown): ClientConfig {
  if (typeof value !== "object" || value === null) throw new Error("config.json is not an object");
  const record = value as Record<string, unknown>;
  for (const key of REQUIRED) {
    if (typeof record[key] !== "string" || record[key] === "") {
      throw new Error(`config.json lacks "${key}"`);
    }
  }
  return {
    apiUrl: String(record.apiUrl).replace(/\/$/, ""),
    region: String(record.region),
    userPoolId: String(record.userPoolId),
    userPoolClientId: String(record.userPoolClientId),
    cognitoEndpoint: typeof record.cognitoEndpoint === "string" ? record.cognitoEndpoint : undefined,
    authFlow: record.authFlow === "USER_PASSWORD_AUTH" ? "USER_PASSWORD_AUTH" : "USER_SRP_AUTH",
  };
}

export async function loadConfig(url = "config.json"): Promise<ClientConfig> {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`could not load ${url} (${response.status})`);
  return parseConfig(await response.json());
}
