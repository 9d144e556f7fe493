import {
  INITIAL,
  MAX_ZOOM,
  applyWindow,
  describe as describeView,
  panBy,
  windowTable,
  withWindow,
  zoomAt,
} from "./viewer";

const SIDE = { width: 200, height: 100 };

describe("viewer", () => {
  it("zooms about the pointer, which stays where it was", () => {
    const view = zoomAt(INITIAL, 2, 50, 50, SIDE);
    expect(view.zoom).toBe(2);
    // The image point under (50, 50) before is (50, 50); after, it is drawn at x + 2 * 50.
    expect([view.x + 2 * 50, view.y + 2 * 50]).toEqual([50, 50]);
  });

  it("never zooms out past the whole image nor in past its limit", () => {
    expect(zoomAt(INITIAL, 0.5, 0, 0, SIDE).zoom).toBe(1);
    expect(zoomAt(INITIAL, 100, 0, 0, SIDE).zoom).toBe(MAX_ZOOM);
  });

  it("pans only as far as the zoomed image covers the canvas", () => {
    const zoomed = zoomAt(INITIAL, 2, 0, 0, SIDE);
    expect(panBy(zoomed, -1000, -1000, SIDE)).toMatchObject({ x: -200, y: -100 });
    expect(panBy(zoomed, 1000, 1000, SIDE)).toMatchObject({ x: 0, y: 0 });
    expect(panBy(INITIAL, 30, 30, SIDE)).toMatchObject({ x: 0, y: 0 });
  });

  it("shows the image as it is through the initial window", () => {
    expect([...windowTable(128, 256)]).toEqual([...Array(256).keys()]);
  });

  it("stretches a narrow window's range to the whole scale and clips outside it", () => {
    const table = windowTable(100, 50); // 75..124
    expect([table[70], table[75], table[100], table[124], table[200]]).toEqual([0, 0, 130, 255, 255]);
  });

  it("windows gray pixels and keeps their alpha", () => {
    expect([...applyWindow(new Uint8ClampedArray([100, 100, 100, 7]), 100, 50)]).toEqual([130, 130, 130, 7]);
  });

  it("keeps the window within its scale", () => {
    expect(withWindow(INITIAL, 400.4, 0)).toMatchObject({ level: 255, width: 1 });
  });

  it("says the zoom and the window in words", () => {
    expect(describeView(INITIAL)).toBe("Zoom 100 %, window as sent");
    expect(describeView(withWindow(zoomAt(INITIAL, 2, 0, 0, SIDE), 10, 20))).toBe(
      "Zoom 200 %, window level 10, width 20",
    );
  });
});
