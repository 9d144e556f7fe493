import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { loadConfig } from "./lib/config";
import "./styles.css";

const container = document.getElementById("root");
if (container === null) throw new Error("index.html has no #root");
const root = createRoot(container);

loadConfig()
  .then((config) =>
    root.render(
      <StrictMode>
        <App config={config} />
      </StrictMode>,
    ),
  )
  .catch((error: unknown) =>
    root.render(
      <p role="alert">
        The app is not configured: {error instanceof Error ? error.message : String(error)}. See
        docs/web-client.md.
      </p>,
    ),
  );
