import { useEffect, useId, useRef, useState, type KeyboardEvent, type PointerEvent } from "react";

import { percent } from "../lib/format";
import { LEGEND_GRADIENT, colourise, loadBitmap, lungMask, outline } from "../lib/heatmap";
import {
  INITIAL,
  PAN_STEP,
  PRESETS,
  ZOOM_STEP,
  applyWindow,
  describe,
  panBy,
  withWindow,
  zoomAt,
  type View,
} from "../lib/viewer";

type DragMode = "pan" | "window";

interface Layers {
  /** The preview's own pixels, kept to re-window them. */
  pixels: ImageData;
  /** The preview through the current window. */
  windowed: HTMLCanvasElement;
  /** The coloured heatmap with the lung outline, at the preview's size. */
  heat: HTMLCanvasElement;
  hasLungs: boolean;
}

function canvasOf(width: number, height: number): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

async function loadLayers(previewSrc: string, heatmapSrc: string): Promise<Layers> {
  const [preview, heatmap] = await Promise.all([loadBitmap(previewSrc), loadBitmap(heatmapSrc)]);
  const { width, height } = preview;
  const original = canvasOf(width, height).getContext("2d");
  if (!original) throw new Error("no 2D canvas");
  original.drawImage(preview, 0, 0);
  const pixels = original.getImageData(0, 0, width, height);
  const small = canvasOf(heatmap.width, heatmap.height);
  const smallContext = small.getContext("2d");
  const heat = canvasOf(width, height);
  const heatContext = heat.getContext("2d");
  if (!smallContext || !heatContext) throw new Error("no 2D canvas");
  smallContext.drawImage(heatmap, 0, 0);
  const cam = smallContext.getImageData(0, 0, heatmap.width, heatmap.height);
  const lungs = lungMask(cam.data);
  cam.data.set(colourise(cam.data));
  smallContext.putImageData(cam, 0, 0);
  heatContext.imageSmoothingEnabled = true;
  heatContext.drawImage(small, 0, 0, width, height);
  if (lungs) {
    smallContext.putImageData(
      new ImageData(outline(lungs, heatmap.width, heatmap.height), heatmap.width, heatmap.height),
      0,
      0,
    );
    heatContext.imageSmoothingEnabled = false;
    heatContext.drawImage(small, 0, 0, width, height);
  }
  return { pixels, windowed: canvasOf(width, height), heat, hasLungs: lungs !== null };
}

function draw(
  target: HTMLCanvasElement | null,
  source: HTMLCanvasElement,
  view: View,
  smooth: boolean,
): void {
  const context = target?.getContext("2d");
  if (!target || !context) return;
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, target.width, target.height);
  context.imageSmoothingEnabled = smooth;
  context.setTransform(view.zoom, 0, 0, view.zoom, view.x, view.y);
  context.drawImage(source, 0, 0);
  target.dataset.drawn = "true";
}

/** The image the model saw with its heatmap: zoom, pan, window (brightness and contrast), opacity. */
export function Viewer({ previewSrc, heatmapSrc }: { previewSrc: string; heatmapSrc: string }) {
  const base = useRef<HTMLCanvasElement>(null);
  const overlay = useRef<HTMLCanvasElement>(null);
  const [layers, setLayers] = useState<Layers | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [view, setView] = useState<View>(INITIAL);
  const [opacity, setOpacity] = useState(0.5);
  const [shown, setShown] = useState(true);
  const [mode, setMode] = useState<DragMode>("pan");
  const pointers = useRef(new Map<number, { x: number; y: number }>());
  const ids = { opacity: useId(), toggle: useId(), level: useId(), width: useId(), help: useId() };

  useEffect(() => {
    // A new image is a new Viewer (keyed by its source in ResultView): no state to reset here.
    let cancelled = false;
    loadLayers(previewSrc, heatmapSrc)
      .then((loaded) => !cancelled && setLayers(loaded))
      .catch(() => !cancelled && setError("The image and its heatmap could not be loaded."));
    return () => {
      cancelled = true;
    };
  }, [previewSrc, heatmapSrc]);

  useEffect(() => {
    if (!layers) return;
    for (const canvas of [base.current, overlay.current]) {
      if (canvas && canvas.width !== layers.pixels.width) {
        canvas.width = layers.pixels.width;
        canvas.height = layers.pixels.height;
      }
    }
    const windowed = applyWindow(layers.pixels.data, view.level, view.width);
    layers.windowed
      .getContext("2d")
      ?.putImageData(new ImageData(windowed, layers.pixels.width, layers.pixels.height), 0, 0);
    draw(base.current, layers.windowed, view, true);
    draw(overlay.current, layers.heat, view, false);
  }, [layers, view]);

  // A wheel listener that may cancel the page's scrolling must not be passive: React's onWheel is.
  useEffect(() => {
    const canvas = overlay.current;
    if (!canvas) return undefined;
    const onWheel = (event: WheelEvent): void => {
      event.preventDefault();
      const point = canvasPoint(canvas, event.clientX, event.clientY);
      const factor = event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP;
      setView((current) => zoomAt(current, factor, point.x, point.y, canvas));
    };
    canvas.addEventListener("wheel", onWheel, { passive: false });
    return () => canvas.removeEventListener("wheel", onWheel);
  }, [layers]);

  function side(): { width: number; height: number } {
    return { width: overlay.current?.width ?? 1, height: overlay.current?.height ?? 1 };
  }

  function zoomCentre(factor: number): void {
    const { width, height } = side();
    setView((current) => zoomAt(current, factor, width / 2, height / 2, { width, height }));
  }

  function onKeyDown(event: KeyboardEvent<HTMLDivElement>): void {
    const { width, height } = side();
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [width * PAN_STEP, 0],
      ArrowRight: [-width * PAN_STEP, 0],
      ArrowUp: [0, height * PAN_STEP],
      ArrowDown: [0, -height * PAN_STEP],
    };
    const move = moves[event.key];
    if (move) setView((current) => panBy(current, move[0], move[1], { width, height }));
    else if (event.key === "+" || event.key === "=") zoomCentre(ZOOM_STEP);
    else if (event.key === "-") zoomCentre(1 / ZOOM_STEP);
    else if (event.key === "0") setView(INITIAL);
    else return;
    event.preventDefault();
  }

  function onPointerDown(event: PointerEvent<HTMLCanvasElement>): void {
    event.currentTarget.setPointerCapture(event.pointerId);
    pointers.current.set(event.pointerId, { x: event.clientX, y: event.clientY });
  }

  function onPointerMove(event: PointerEvent<HTMLCanvasElement>): void {
    const before = pointers.current.get(event.pointerId);
    if (!before) return;
    const canvas = event.currentTarget;
    const scale = canvas.width / (canvas.getBoundingClientRect().width || canvas.width);
    const others = [...pointers.current.entries()].filter(([id]) => id !== event.pointerId);
    const now = { x: event.clientX, y: event.clientY };
    pointers.current.set(event.pointerId, now);
    const other = others[0]?.[1];
    if (other) {
      // Two fingers: pinch zoom about their midpoint.
      const factor =
        Math.hypot(now.x - other.x, now.y - other.y) /
        (Math.hypot(before.x - other.x, before.y - other.y) || 1);
      const mid = canvasPoint(canvas, (now.x + other.x) / 2, (now.y + other.y) / 2);
      setView((current) => zoomAt(current, factor, mid.x, mid.y, canvas));
      return;
    }
    const dx = (now.x - before.x) * scale;
    const dy = (now.y - before.y) * scale;
    if (mode === "pan") setView((current) => panBy(current, dx, dy, canvas));
    // As in PACS viewers: sideways changes the width (contrast), up and down the level (brightness).
    else setView((current) => withWindow(current, current.level - dy / 2, current.width + dx / 2));
  }

  function onPointerUp(event: PointerEvent<HTMLCanvasElement>): void {
    pointers.current.delete(event.pointerId);
  }

  if (error) return <p role="alert">{error}</p>;
  const shownView = describe(view);
  return (
    <figure className="viewer" aria-busy={layers === null}>
      <div
        className="layers"
        tabIndex={0}
        role="group"
        aria-label="Image viewer"
        aria-describedby={ids.help}
        onKeyDown={onKeyDown}
      >
        <canvas ref={base} data-testid="preview-canvas" role="img" aria-label="The image the model saw" />
        <canvas
          ref={overlay}
          data-testid="heatmap-canvas"
          role="img"
          aria-label="Heatmap: where the model looked for its answer"
          className={mode === "pan" ? "drag-pan" : "drag-window"}
          style={{ opacity: shown ? opacity : 0 }}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onPointerCancel={onPointerUp}
        />
      </div>
      <figcaption>
        <p id={ids.help} className="hint">
          Wheel, pinch or + and − zoom; drag or the arrow keys move the image; 0 resets.
        </p>
        <p className="view-state" data-testid="view-state">
          {shownView}
        </p>
        <div className="controls" role="group" aria-label="Zoom">
          <button type="button" onClick={() => zoomCentre(ZOOM_STEP)}>
            Zoom in
          </button>
          <button type="button" onClick={() => zoomCentre(1 / ZOOM_STEP)}>
            Zoom out
          </button>
          <button type="button" onClick={() => setView(INITIAL)}>
            Reset view
          </button>
        </div>
        <fieldset className="controls">
          <legend>Dragging the image</legend>
          {(["pan", "window"] as const).map((choice) => (
            <label key={choice}>
              <input
                type="radio"
                name={`${ids.help}-drag`}
                checked={mode === choice}
                onChange={() => setMode(choice)}
              />{" "}
              {choice === "pan" ? "moves it" : "changes brightness and contrast"}
            </label>
          ))}
        </fieldset>
        <div className="controls" role="group" aria-label="Window presets">
          <span aria-hidden="true">Window:</span>
          {PRESETS.map((preset) => (
            <button
              key={preset.name}
              type="button"
              aria-pressed={view.level === preset.level && view.width === preset.width}
              onClick={() => setView((current) => withWindow(current, preset.level, preset.width))}
            >
              {preset.name}
            </button>
          ))}
        </div>
        <div className="controls">
          <label htmlFor={ids.level}>Brightness (level)</label>
          <input
            id={ids.level}
            type="range"
            min={0}
            max={255}
            value={255 - view.level}
            aria-valuetext={`level ${view.level}`}
            onChange={(event) =>
              setView((current) => withWindow(current, 255 - Number(event.target.value), current.width))
            }
          />
          <label htmlFor={ids.width}>Contrast (width)</label>
          <input
            id={ids.width}
            type="range"
            min={1}
            max={512}
            value={513 - view.width}
            aria-valuetext={`width ${view.width}`}
            onChange={(event) =>
              setView((current) => withWindow(current, current.level, 513 - Number(event.target.value)))
            }
          />
        </div>
        <div className="controls">
          <input
            id={ids.toggle}
            type="checkbox"
            checked={shown}
            onChange={(event) => setShown(event.target.checked)}
          />
          <label htmlFor={ids.toggle}>Show heatmap</label>
          <label htmlFor={ids.opacity}>Opacity</label>
          <input
            id={ids.opacity}
            type="range"
            min={0}
            max={1}
            step={0.05}
            value={opacity}
            disabled={!shown}
            aria-valuetext={percent(opacity)}
            onChange={(event) => setOpacity(Number(event.target.value))}
          />
          <output htmlFor={ids.opacity}>{percent(opacity)}</output>
        </div>
        <div className="legend">
          <span>low</span>
          <span className="legend-bar" style={{ backgroundImage: LEGEND_GRADIENT }} aria-hidden="true" />
          <span>high</span>
          <span className="legend-text">attention of the model for its answer</span>
          {layers?.hasLungs && (
            <span className="legend-text">White line: the outline of the lung fields.</span>
          )}
        </div>
      </figcaption>
    </figure>
  );
}

function canvasPoint(canvas: HTMLCanvasElement, clientX: number, clientY: number): { x: number; y: number } {
  const rect = canvas.getBoundingClientRect();
  const scale = canvas.width / (rect.width || canvas.width);
  return { x: (clientX - rect.left) * scale, y: (clientY - rect.top) * scale };
}
