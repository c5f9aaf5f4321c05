// Named engine failures, one class per cause (as WebLLM does), so callers can `instanceof` them
// and the UI can say what happened and what to do. They cross the worker boundary as
// {name, message, fix} and are rebuilt here by name (see reviveError).

export class EngineError extends Error {
  /** What the user can do about it; shown under the message. */
  readonly fix: string | undefined;

  constructor(message: string, fix?: string) {
    super(message);
    this.fix = fix;
  }

  // Spelled out per class: the minifier renames classes, and callers match on `name`.
  override get name(): string {
    return "EngineError";
  }
}

/** The id is not in /api/models (or the model is not a CLIP-family model). */
export class ModelNotFoundError extends EngineError {
  override get name(): string {
    return "ModelNotFoundError";
  }
}

/** A model file could not be fetched completely (network, HTTP status, wrong size). */
export class DownloadError extends EngineError {
  override get name(): string {
    return "DownloadError";
  }
}

/** An image that the browser cannot decode, or a source it may not read (cross-origin URL). */
export class UnsupportedImageError extends EngineError {
  override get name(): string {
    return "UnsupportedImageError";
  }
}

/** The chosen variant needs more memory than the runtime can give it. */
export class ModelTooLargeError extends EngineError {
  override get name(): string {
    return "ModelTooLargeError";
  }
}

/** WebGPU was demanded explicitly but there is no adapter. (Auto mode falls back to WASM instead.) */
export class WebGPUUnavailableError extends EngineError {
  override get name(): string {
    return "WebGPUUnavailableError";
  }
}

/** A call that needs a loaded model came before `load()` finished. */
export class ModelNotLoadedError extends EngineError {
  override get name(): string {
    return "ModelNotLoadedError";
  }
}

/** The model's own config (preprocessor_config.json, tokenizer) asks for something not supported. */
export class UnsupportedModelConfigError extends EngineError {
  override get name(): string {
    return "UnsupportedModelConfigError";
  }
}

/** onnxruntime failed to create a session or to run one. */
export class InferenceError extends EngineError {
  override get name(): string {
    return "InferenceError";
  }
}

/** The engine was disposed or its worker died. */
export class EngineClosedError extends EngineError {
  override get name(): string {
    return "EngineClosedError";
  }
}

/** A chat request with a bad field (temperature out of range, empty messages, prompt too long). */
export class InvalidRequestError extends EngineError {
  override get name(): string {
    return "InvalidRequestError";
  }
}

/** The browser's storage quota cannot hold the model files still to download. */
export class StorageQuotaError extends EngineError {
  override get name(): string {
    return "StorageQuotaError";
  }
}

/** A model file's bytes do not match the manifest's sha256 and cannot be fetched right (offline, or a bad server copy). */
export class CorruptFileError extends EngineError {
  override get name(): string {
    return "CorruptFileError";
  }
}

const CLASSES = {
  EngineError,
  ModelNotFoundError,
  DownloadError,
  UnsupportedImageError,
  ModelTooLargeError,
  WebGPUUnavailableError,
  ModelNotLoadedError,
  UnsupportedModelConfigError,
  InferenceError,
  EngineClosedError,
  InvalidRequestError,
  StorageQuotaError,
  CorruptFileError,
} as const;

export type ErrorName = keyof typeof CLASSES;

export interface SerializedError {
  name: string;
  message: string;
  fix?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof EngineError) return { name: err.name, message: err.message, fix: err.fix };
  if (err instanceof Error) return { name: "EngineError", message: `${err.name}: ${err.message}` };
  return { name: "EngineError", message: String(err) };
}

export function reviveError(data: SerializedError): EngineError {
  const Class = CLASSES[data.name as ErrorName] ?? EngineError;
  return new Class(data.message, data.fix);
}
