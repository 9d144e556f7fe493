/**
 * The image viewer's state, as plain functions: zoom and pan (canvas pixels), and the display window
 * (level and width over the 0-255 values of the preview the model saw), as a radiology viewer has them.
 */
export interface View {
  zoom: number;
  /** Where the image's top-left corner is drawn, in canvas pixels. */
  x: number;
  y: number;
  /** Window centre and width on the preview's 0-255 scale: 128 / 256 shows it as it is. */
  level: number;
  width: number;
}

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 8;
export const ZOOM_STEP = 1.25;
export const PAN_STEP = 0.1; // of the canvas side, per arrow key press

export const INITIAL: View = { zoom: 1, x: 0, y: 0, level: 128, width: 256 };

/** Window presets on the preview's 0-255 scale (a PNG or a DICOM already windowed by the decoder). */
export const PRESETS: readonly { name: string; level: number; width: number }[] = [
  { name: "As sent", level: 128, width: 256 },
  { name: "Lungs", level: 96, width: 160 },
  { name: "Soft tissue", level: 140, width: 120 },
  { name: "Bone", level: 190, width: 110 },
];

const clamp = (value: number, low: number, high: number): number => Math.min(high, Math.max(low, value));

/** Keeps the zoomed image over the whole canvas: no empty band at any edge. */
function contained(view: View, side: { width: number; height: number }): View {
  const x = clamp(view.x, side.width * (1 - view.zoom), 0);
  const y = clamp(view.y, side.height * (1 - view.zoom), 0);
  return { ...view, x, y };
}

/** Zoom by ``factor`` about the canvas point (px, py), which stays where it is on screen. */
export function zoomAt(
  view: View,
  factor: number,
  px: number,
  py: number,
  side: { width: number; height: number },
): View {
  const zoom = clamp(view.zoom * factor, MIN_ZOOM, MAX_ZOOM);
  const scale = zoom / view.zoom;
  return contained({ ...view, zoom, x: px - (px - view.x) * scale, y: py - (py - view.y) * scale }, side);
}

export function panBy(view: View, dx: number, dy: number, side: { width: number; height: number }): View {
  return contained({ ...view, x: view.x + dx, y: view.y + dy }, side);
}

export function withWindow(view: View, level: number, width: number): View {
  return { ...view, level: clamp(Math.round(level), 0, 255), width: clamp(Math.round(width), 1, 512) };
}

/** Value -> shown value for every 0-255 input: DICOM's linear window (PS3.3 C.11.2.1.2), under which
 * level 128 and width 256 leave every value as it is. */
export function windowTable(level: number, width: number): Uint8ClampedArray {
  const table = new Uint8ClampedArray(256);
  for (let v = 0; v < 256; v += 1)
    table[v] =
      width <= 1 ? (v > level - 0.5 ? 255 : 0) : Math.round(((v - (level - 0.5)) / (width - 1) + 0.5) * 255);
  return table;
}

/** Gray RGBA pixels through the window: the same table on red, green and blue; alpha kept. */
export function applyWindow(
  pixels: Uint8ClampedArray,
  level: number,
  width: number,
): Uint8ClampedArray<ArrayBuffer> {
  const table = windowTable(level, width);
  const out = new Uint8ClampedArray(pixels.length);
  for (let i = 0; i < pixels.length; i += 4) {
    out[i] = table[pixels[i] ?? 0] ?? 0;
    out[i + 1] = table[pixels[i + 1] ?? 0] ?? 0;
    out[i + 2] = table[pixels[i + 2] ?? 0] ?? 0;
    out[i + 3] = pixels[i + 3] ?? 255;
  }
  return out;
}

/** What a screen reader hears of the view, and the viewer shows under the image. */
export function describe(view: View): string {
  const preset = PRESETS.find((p) => p.level === view.level && p.width === view.width);
  const window = preset
    ? `window ${preset.name.toLowerCase()}`
    : `window level ${view.level}, width ${view.width}`;
  return `Zoom ${Math.round(view.zoom * 100)} %, ${window}`;
}
