import { parseConfig } from "./config";

const good = {
  apiUrl: "https://api.example/prod/",
  region: "eu-west-1",
  userPoolId: "eu-west-1_x",
  userPoolClientId: "c",
};

describe("parseConfig", () => {
  it("keeps the fields and drops a trailing slash of the API URL", () => {
    expect(parseConfig(good)).toEqual({
      ...good,
      apiUrl: "https://api.example/prod",
      cognitoEndpoint: undefined,
      authFlow: "USER_SRP_AUTH",
    });
  });

  it("proves the password by SRP unless the local stack asks for USER_PASSWORD_AUTH", () => {
    expect(parseConfig({ ...good, authFlow: "anything" }).authFlow).toBe("USER_SRP_AUTH");
    expect(parseConfig({ ...good, authFlow: "USER_PASSWORD_AUTH" }).authFlow).toBe("USER_PASSWORD_AUTH");
  });

  it("names a missing field", () => {
    expect(() => parseConfig({ ...good, userPoolId: "" })).toThrow('config.json lacks "userPoolId"');
  });
});
