// The Hugging Face image processors used by CLIP, SigLIP and ALIGN (CLIPImageProcessor,
// SiglipImageProcessor, EfficientNetImageProcessor), on decoded 8-bit pixels:
// convert to RGB -> resize (PIL, see resample.ts) -> center crop -> rescale -> normalize -> CHW.
// Each step follows transformers' numpy code path, including its float64 rescale.

import { UnsupportedModelConfigError } from "../errors";
import { PilResample, pilResize, type RgbImage } from "./resample";

type Size = { height?: number; width?: number; shortest_edge?: number; longest_edge?: number } | number;

/** The keys of preprocessor_config.json that change pixel_values. */
export interface PreprocessorConfig {
  image_processor_type?: string;
  do_convert_rgb?: boolean | null;
  do_resize?: boolean;
  size?: Size;
  resample?: number;
  do_center_crop?: boolean;
  crop_size?: Size;
  do_rescale?: boolean;
  rescale_factor?: number;
  rescale_offset?: boolean;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  include_top?: boolean;
}

export interface PixelValues {
  data: Float32Array; // [3, height, width]
  height: number;
  width: number;
}

/** RGBA as the canvas gives it (unpremultiplied) -> RGB; PIL's convert("RGB") drops alpha. */
export function rgbaToRgb(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { width, height, data };
}

/** transformers' get_resize_output_image_size / processor-specific size dicts -> (height, width). */
export function resizeTarget(size: Size | undefined, height: number, width: number): [number, number] {
  if (typeof size === "number") return [size, size];
  if (size?.height !== undefined && size.width !== undefined) return [size.height, size.width];
  if (size?.shortest_edge !== undefined && size.longest_edge === undefined) {
    // default_to_square=False: the short side becomes shortest_edge, the long side scales (truncated).
    const short = Math.min(height, width);
    const long = Math.max(height, width);
    const newLong = Math.trunc((size.shortest_edge * long) / short);
    return width <= height ? [newLong, size.shortest_edge] : [size.shortest_edge, newLong];
  }
  throw new UnsupportedModelConfigError(
    `preprocessor_config.json size ${JSON.stringify(size)} is not supported`,
    "export the model with a CLIP, SigLIP or ALIGN image processor ({height,width} or {shortest_edge})",
  );
}

/** transformers.image_transforms.center_crop: floor-centered, zero-padded when the crop is larger. */
export function centerCrop(img: RgbImage, cropH: number, cropW: number): RgbImage {
  const padTop = Math.ceil(Math.max(cropH - img.height, 0) / 2);
  const padLeft = Math.ceil(Math.max(cropW - img.width, 0) / 2);
  const top = Math.floor((img.height - cropH) / 2) + padTop;
  const left = Math.floor((img.width - cropW) / 2) + padLeft;
  const out = new Uint8Array(cropH * cropW * 3); // zeros where the padded canvas is empty
  for (let y = 0; y < cropH; y++) {
    const sy = top + y - padTop;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < cropW; x++) {
      const sx = left + x - padLeft;
      if (sx < 0 || sx >= img.width) continue;
      const s = (sy * img.width + sx) * 3;
      const o = (y * cropW + x) * 3;
      out[o] = img.data[s]!;
      out[o + 1] = img.data[s + 1]!;
      out[o + 2] = img.data[s + 2]!;
    }
  }
  return { width: cropW, height: cropH, data: out };
}

function perChannel(value: number | number[] | undefined, fallback: number): [number, number, number] {
  if (value === undefined) return [fallback, fallback, fallback];
  if (typeof value === "number") return [value, value, value];
  if (value.length !== 3) throw new UnsupportedModelConfigError(`expected 3 channel values, got ${value.length}`);
  return [value[0]!, value[1]!, value[2]!];
}

function defaultResample(cfg: PreprocessorConfig): number {
  return cfg.image_processor_type?.startsWith("EfficientNet") ? PilResample.NEAREST : PilResample.BICUBIC;
}

/** pixel_values for one image, exactly as the model's Python image processor computes them. */
export function preprocess(rgb: RgbImage, cfg: PreprocessorConfig): PixelValues {
  let img = rgb;
  if (cfg.do_resize ?? true) {
    const [h, w] = resizeTarget(cfg.size, img.height, img.width);
    img = pilResize(img, w, h, cfg.resample ?? defaultResample(cfg));
  }
  if (cfg.do_center_crop && cfg.crop_size !== undefined) {
    const [h, w] = resizeTarget(cfg.crop_size, img.height, img.width);
    img = centerCrop(img, h, w);
  }
  const doRescale = cfg.do_rescale ?? true;
  const scale = cfg.rescale_factor ?? 1 / 255;
  const offset = doRescale && cfg.rescale_offset ? 1 : 0;
  const doNormalize = cfg.do_normalize ?? true;
  const mean = perChannel(cfg.image_mean, 0.5).map(Math.fround);
  const std = perChannel(cfg.image_std, 0.5).map(Math.fround);
  // EfficientNet's include_top divides by std once more (mean 0).
  const topStd = cfg.include_top && cfg.image_processor_type?.startsWith("EfficientNet") ? std : null;

  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      let v = img.data[i * 3 + c]!;
      // numpy: uint8 -> float64 * scale -> float32; the offset is subtracted in float32.
      if (doRescale) v = Math.fround(Math.fround(v * scale) - offset);
      if (doNormalize) v = Math.fround(Math.fround(v - mean[c]!) / std[c]!);
      if (topStd) v = Math.fround(v / topStd[c]!);
      out[c * plane + i] = v;
    }
  }
  return { data: out, height: img.height, width: img.width };
}
