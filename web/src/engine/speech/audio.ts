// Audio in, on the main thread (workers have no AudioContext): a Blob/File is decoded by the
// browser's decodeAudioData (wav, mp3, ogg, webm, ... whatever it supports) in an OfflineAudioContext
// running at the model's rate, which also resamples; channels are averaged to mono. A MediaStream
// is recorded with MediaRecorder until `seconds` pass or `signal` aborts, then decoded the same way.

import { InvalidRequestError } from "../errors";

export type AudioInput = Blob | Float32Array | MediaStream;

export interface RecordOptions {
  /** Stop after this many seconds (default 30). */
  seconds?: number;
  /** Stop when aborted (e.g. the user releases the microphone button). */
  signal?: AbortSignal;
}

export async function decodeAudio(blob: Blob, rate: number): Promise<Float32Array> {
  const bytes = await blob.arrayBuffer();
  let buffer: AudioBuffer;
  try {
    buffer = await new OfflineAudioContext(1, 1, rate).decodeAudioData(bytes);
  } catch (err) {
    const name = blob instanceof File ? blob.name : `a ${blob.type || "blob"}`;
    throw new InvalidRequestError(`the browser cannot decode ${name} as audio (${String(err)})`,
      "use wav, mp3, ogg or webm audio");
  }
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const channel = buffer.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i]! += channel[i]! / buffer.numberOfChannels;
  }
  return mono;
}

export function recordStream(stream: MediaStream, options: RecordOptions = {}): Promise<Blob> {
  if (stream.getAudioTracks().length === 0) {
    return Promise.reject(new InvalidRequestError("the MediaStream has no audio track", "pass getUserMedia({audio: true})"));
  }
  const recorder = new MediaRecorder(stream);
  const parts: Blob[] = [];
  recorder.ondataavailable = (e) => {
    if (e.data.size) parts.push(e.data);
  };
  return new Promise((resolve, reject) => {
    const stop = () => {
      if (recorder.state !== "inactive") recorder.stop();
    };
    const timer = setTimeout(stop, (options.seconds ?? 30) * 1000);
    options.signal?.addEventListener("abort", stop, { once: true });
    recorder.onerror = (e) => reject(new InvalidRequestError(`recording failed: ${String(e)}`));
    recorder.onstop = () => {
      clearTimeout(timer);
      resolve(new Blob(parts, { type: recorder.mimeType }));
    };
    recorder.start();
  });
}

/** Any AudioInput -> mono Float32Array at `rate` (a Float32Array is taken as already at `rate`). */
export async function toSamples(audio: AudioInput, rate: number, options: RecordOptions = {}): Promise<Float32Array> {
  if (audio instanceof Float32Array) return audio;
  if (audio instanceof Blob) return decodeAudio(audio, rate);
  if (typeof MediaStream !== "undefined" && audio instanceof MediaStream) {
    return decodeAudio(await recordStream(audio, options), rate);
  }
  throw new InvalidRequestError(`unsupported audio input: ${String(audio)}`,
    "pass a Blob or File, a Float32Array of 16 kHz samples, or a MediaStream");
}
