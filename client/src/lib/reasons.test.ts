import { REJECTION_REASONS } from "../generated/wire";
import { hasWords, reasonText } from "./reasons";

describe("reasons", () => {
  it("has plain words for every reason the server can give", () => {
    expect(REJECTION_REASONS.filter((reason) => !hasWords(reason))).toEqual([]);
  });

  it("falls back to a general sentence for a reason it does not know", () => {
    expect(reasonText("EndpointTimeoutError")).toBe("The image could not be classified.");
  });
});
