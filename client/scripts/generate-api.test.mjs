// @vitest-environment node
import { readFileSync } from "node:fs";
import { OUT, render } from "./generate-api.mjs";

test("the API types are generated from the committed OpenAPI document (npm run generate:api)", async () => {
  expect(readFileSync(OUT, "utf8")).toBe(await render());
});
