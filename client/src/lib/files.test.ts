import { SYNC_MAX_BYTES, UPLOAD_MAX_BYTES, checkFile, kindOf } from "./files";

const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0]);
const dicom = new Uint8Array(140);
dicom.set([0x44, 0x49, 0x43, 0x4d], 128);

describe("kindOf", () => {
  it("recognises PNG, JPEG and DICOM by their first bytes", () => {
    expect(kindOf(png)).toBe("image/png");
    expect(kindOf(jpeg)).toBe("image/jpeg");
    expect(kindOf(dicom)).toBe("application/dicom");
  });

  it("refuses anything else, whatever the name", () => {
    expect(kindOf(new TextEncoder().encode("<!doctype html><html>"))).toBeNull();
    expect(kindOf(new Uint8Array(200))).toBeNull();
  });
});

describe("checkFile", () => {
  it("sends small images to classify and large ones to the presigned upload", () => {
    expect(checkFile(png, 1000)).toEqual({ ok: true, kind: "image/png", route: "classify" });
    expect(checkFile(png, SYNC_MAX_BYTES + 1)).toEqual({ ok: true, kind: "image/png", route: "upload" });
  });

  it("explains what is wrong", () => {
    expect(checkFile(png, 0)).toEqual({ ok: false, message: "The file is empty." });
    const tooBig = checkFile(jpeg, UPLOAD_MAX_BYTES + 1);
    expect(tooBig.ok).toBe(false);
    expect(!tooBig.ok && tooBig.message).toMatch(/limit is 25 MB/);
    const notImage = checkFile(new TextEncoder().encode("%PDF-1.7"), 9);
    expect(!notImage.ok && notImage.message).toMatch(/not a PNG, JPEG or DICOM/);
  });
});
