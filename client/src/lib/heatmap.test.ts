import { colour, colourise } from "./heatmap";

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
