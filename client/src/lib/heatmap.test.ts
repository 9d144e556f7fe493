import { colour, colourise, lungMask, outline } from "./heatmap";

describe("heatmap colours", () => {
  it("runs from dark blue to yellow and clamps", () => {
    expect(colour(0)).toEqual([48, 18, 59]);
    expect(colour(1)).toEqual([250, 250, 110]);
    expect(colour(-1)).toEqual(colour(0));
    expect(colour(2)).toEqual(colour(1));
  });

  it("makes hot pixels more opaque than cold ones", () => {
    const out = colourise(new Uint8ClampedArray([0, 0, 0, 255, 255, 255, 255, 255]));
    expect(out[3]).toBeLessThan(out[7] ?? 0);
  });
});

describe("lung fields in a heatmap", () => {
  const rgba = (cells: [number, number, number][]): Uint8ClampedArray =>
    new Uint8ClampedArray(cells.flatMap(([r, g, b]) => [r, g, b, 255]));

  it("reads the green channel of an RGB heatmap as the lung mask", () => {
    expect(
      Array.from(
        lungMask(
          rgba([
            [10, 255, 0],
            [200, 0, 0],
          ]),
        ) ?? [],
      ),
    ).toEqual([1, 0]);
  });

  it("finds no lungs in a gray heatmap", () => {
    expect(
      lungMask(
        rgba([
          [10, 10, 10],
          [255, 255, 255],
        ]),
      ),
    ).toBeNull();
  });

  it("draws only the edge of a lung region", () => {
    const mask = new Uint8Array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    const drawn = outline(mask, 5, 5);
    const opaque = (x: number, y: number): number => drawn[(y * 5 + x) * 4 + 3] ?? 0;
    expect(opaque(1, 1)).toBe(255);
    expect(opaque(2, 2)).toBe(0);
    expect(opaque(0, 0)).toBe(0);
  });
});
