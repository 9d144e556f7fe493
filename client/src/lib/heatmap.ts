/** Colouring of the class activation map: a perceptually ordered ramp, dark blue (low) to yellow (high). */
type Rgb = [number, number, number];

const STOPS: readonly (readonly [number, Rgb])[] = [
  [0.0, [48, 18, 59]],
  [0.25, [50, 101, 224]],
  [0.5, [27, 207, 212]],
  [0.75, [240, 190, 40]],
  [1.0, [250, 250, 110]],
];

export function colour(value: number): Rgb {
  const v = Math.min(1, Math.max(0, value));
  let [lo, bottom] = STOPS[0] ?? [0, [0, 0, 0]];
  for (const [hi, top] of STOPS) {
    if (v <= hi) {
      const t = hi > lo ? (v - lo) / (hi - lo) : 0;
      const mix = (a: number, b: number): number => Math.round(a + t * (b - a));
      return [mix(bottom[0], top[0]), mix(bottom[1], top[1]), mix(bottom[2], top[2])];
    }
    [lo, bottom] = [hi, top];
  }
  return bottom;
}

/** Gray CAM pixels (RGBA, as getImageData gives them) -> coloured RGBA, alpha growing with the value. */
export function colourise(gray: Uint8ClampedArray): Uint8ClampedArray {
  const out = new Uint8ClampedArray(gray.length);
  for (let i = 0; i < gray.length; i += 4) {
    const value = (gray[i] ?? 0) / 255;
    out.set([...colour(value), Math.round(80 + 175 * value)], i);
  }
  return out;
}

/**
 * The lung fields a heatmap carries, if it does: a model with a lung-field network sends an RGB heatmap
 * whose red is the map, green 255 on the lung fields and blue 0 (model.serving.runtime.lung_cam_png). A plain
 * gray heatmap (red = green = blue) has none: null.
 */
export function lungMask(pixels: Uint8ClampedArray): Uint8Array | null {
  const mask = new Uint8Array(pixels.length / 4);
  let lungs = 0;
  for (let i = 0, p = 0; i < pixels.length; i += 4, p += 1) {
    const green = pixels[i + 1] ?? 0;
    if ((pixels[i + 2] ?? 0) !== 0 || (green !== 0 && green !== 255)) return null;
    mask[p] = green === 255 ? 1 : 0;
    lungs += mask[p] ?? 0;
  }
  return lungs > 0 ? mask : null;
}

/** RGBA pixels of the mask's outline (white, opaque), transparent elsewhere: a lung pixel with a
 * neighbour outside the lungs, or on the image's edge. */
export function outline(mask: Uint8Array, width: number, height: number): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(width * height * 4);
  const at = (x: number, y: number): number =>
    x < 0 || y < 0 || x >= width || y >= height ? 0 : (mask[y * width + x] ?? 0);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (!at(x, y)) continue;
      if (at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) continue;
      out.set([255, 255, 255, 255], (y * width + x) * 4);
    }
  }
  return out;
}

export const LEGEND_GRADIENT = `linear-gradient(to right, ${STOPS.map(([at, [r, g, b]]) => `rgb(${r},${g},${b}) ${at * 100}%`).join(", ")})`;

/** An image as a bitmap, by fetch: a CORS-clean canvas source (its pixels stay readable). */
export async function loadBitmap(src: string): Promise<ImageBitmap> {
  const response = await fetch(src);
  if (!response.ok) throw new Error(`image not available (${response.status})`);
  return createImageBitmap(await response.blob());
}
