// Decoded RGB pixels from what callers pass (Blob or raw RGBA), in the worker. Decoding keeps
// the file's own values: no premultiplied alpha, no colour-space conversion (PIL converts neither).

import { UnsupportedImageError } from "../errors";
import { rgbaToRgb } from "./preprocess";
import type { RgbImage } from "./resample";

export type ImagePayload =
  | { kind: "blob"; blob: Blob; name?: string }
  | { kind: "pixels"; width: number; height: number; data: Uint8ClampedArray };

export async function decodeImage(image: ImagePayload): Promise<RgbImage> {
  if (image.kind === "pixels") return rgbaToRgb(image.data, image.width, image.height);
  const what = image.name ?? `a ${image.blob.type || "untyped"} blob`;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(image.blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  } catch {
    throw new UnsupportedImageError(`cannot decode ${what} (${image.blob.size} bytes) as an image`,
      "use a PNG, JPEG, WebP, GIF or BMP file");
  }
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    if (!ctx) throw new UnsupportedImageError("no 2D canvas in this browser to read pixels from");
    ctx.drawImage(bitmap, 0, 0);
    const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    return rgbaToRgb(pixels.data, pixels.width, pixels.height);
  } finally {
    bitmap.close();
  }
}
