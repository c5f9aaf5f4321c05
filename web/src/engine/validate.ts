// Checks of what callers pass to window.engine, on the main thread before anything reaches the
// worker: a bad field is a named InvalidRequestError that says which field and what to pass, never
// a TypeError from deep inside the worker, a hang, or a silently wrong answer (topK NaN = no ranks).

import { InvalidRequestError } from "./errors";

const IMAGE_FIX = "pass images as an array of same-origin or data: URLs, Blobs/Files, or ImageData";
// RFC 2397 with base64 (RFC 4648 alphabet, padded to a multiple of 4): what canvas.toDataURL and
// FileReader.readAsDataURL produce. Plain (percent-encoded) data: URLs are allowed too.
const DATA_URL = /^data:([a-z]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*)(;base64)?,/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === null ? "null" : typeof value;
}

/** images: a non-empty array of the accepted kinds; data: URLs well-formed. */
export function checkImages(images: unknown, field = "images"): void {
  if (!Array.isArray(images)) throw new InvalidRequestError(`${field} must be an array, got ${describe(images)}`, IMAGE_FIX);
  if (images.length === 0) throw new InvalidRequestError(`${field} is empty`, IMAGE_FIX);
  images.forEach((image, i) => {
    const isBlob = typeof Blob !== "undefined" && image instanceof Blob;
    const isPixels = typeof ImageData !== "undefined" && image instanceof ImageData;
    if (!isBlob && !isPixels && typeof image !== "string") {
      throw new InvalidRequestError(`${field}[${i}] is ${describe(image)}, not an image`, IMAGE_FIX);
    }
    if (typeof image === "string" && image.slice(0, 5).toLowerCase() === "data:") checkDataUrl(image, `${field}[${i}]`);
  });
}

/** A data: URL that dataUrlToBlob can decode exactly: a header, a comma, valid base64 when it says base64. */
export function checkDataUrl(url: string, field: string): void {
  const fix = "make data: URLs with canvas.toDataURL() or FileReader.readAsDataURL() " +
    "(data:image/png;base64,<standard base64, padded>)";
  const header = DATA_URL.exec(url);
  if (!header) throw new InvalidRequestError(`${field} is not a well-formed data: URL (data:<type>;base64,<data>)`, fix);
  const body = url.slice(header[0].length);
  if (body === "") throw new InvalidRequestError(`${field} is a data: URL with no data`, fix);
  if (header[3] && !BASE64.test(body)) {
    throw new InvalidRequestError(`${field} says base64 but its data is not valid base64 ` +
      `(${body.length} characters; standard alphabet, length a multiple of 4)`, fix);
  }
  if (header[1] && !header[1].toLowerCase().startsWith("image/")) {
    throw new InvalidRequestError(`${field} is a data: URL of type ${header[1]}, not an image`, fix);
  }
}

/** labels / texts: a non-empty array of non-empty strings. */
/** A non-empty array of strings; `blankAllowed`: "" is fine (a text tower embeds it: only the special tokens). */
export function checkStrings(values: unknown, field: string, blankAllowed = false): void {
  const kind = blankAllowed ? "strings" : "non-empty strings";
  const fix = `pass ${field} as an array of ${kind}, e.g. ["a cat", "a dog"]`;
  if (!Array.isArray(values)) throw new InvalidRequestError(`${field} must be an array, got ${describe(values)}`, fix);
  if (values.length === 0) throw new InvalidRequestError(`${field} is empty`, fix);
  const bad = values.findIndex((v) => typeof v !== "string" || (!blankAllowed && v.trim() === ""));
  if (bad >= 0) throw new InvalidRequestError(`${field}[${bad}] is ${describe(values[bad])}, not a ${kind.slice(0, -1)}`, fix);
}

/** topK: absent, or a whole number >= 1 (more than the labels is fine: all are ranked). */
export function checkTopK(topK: unknown): void {
  if (topK === undefined) return;
  if (typeof topK !== "number" || !Number.isInteger(topK) || topK < 1) {
    throw new InvalidRequestError(`topK must be a whole number of at least 1, got ${describe(topK)}`,
      "leave topK out to rank every label, or pass e.g. topK: 5");
  }
}

/** engine.classify's request, before images are read. */
export function checkClassifyRequest(request: unknown): void {
  if (typeof request !== "object" || request === null) {
    throw new InvalidRequestError(`classify takes one object, got ${describe(request)}`,
      "call engine.classify({ images, labels, topK? })");
  }
  const r = request as Record<string, unknown>;
  checkImages(r.images);
  if (r.classifier !== undefined && (typeof r.classifier !== "string" || r.classifier === "")) {
    throw new InvalidRequestError(`classifier must be a saved classifier's id, got ${describe(r.classifier)}`,
      "pass the id engine.fewshot.fit returned (engine.fewshot.list() lists them)");
  }
  // With a few-shot classifier the labels may be left out ([]): the classifier's own are used.
  const classifierLabels = r.classifier !== undefined && Array.isArray(r.labels) && r.labels.length === 0;
  if (!classifierLabels) checkStrings(r.labels, "labels");
  checkTopK(r.topK);
  if (r.template !== undefined && typeof r.template !== "string") {
    throw new InvalidRequestError(`template must be a string, got ${describe(r.template)}`,
      'pass e.g. template: "a photo of a {}." ("{}" stands for the label)');
  }
}
