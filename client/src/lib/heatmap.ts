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

export const LEGEND_GRADIENT = `linear-gradient(to right, ${STOPS.map(([at, [r, g, b]]) => `rgb(${r},${g},${b}) ${at * 100}%`).join(", ")})`;

/** An image as a bitmap, by fetch: a CORS-clean canvas source (its pixels stay readable). */
export async function loadBitmap(src: string): Promise<ImageBitmap> {
  const response = await fetch(src);
  if (!response.ok) throw new Error(`image not available (${response.status})`);
  return createImageBitmap(await response.blob());
}
