// Public surface of the albatross wire codec.
export * from "./types.js";
export { DecodeError } from "./der.js";
export {
  encodeWire,
  decodeWire,
  encodeHeader,
  decodeHeader,
  encodeCommand,
  decodeCommand,
  encodeSuccess,
  decodeSuccess,
  encodeData,
  decodeData,
  encodePolicy,
  decodePolicy,
  encodeUnikernelConfig,
  decodeUnikernelConfig,
  encodeUnikernelArguments,
  decodeUnikernelArguments,
  encodeUnikernelInfo,
  decodeUnikernelInfo,
  encodeCertExtension,
  decodeCertExtension,
  encodeState,
  decodeState,
  compareUtf8,
} from "./codec.js";
export { encodeFrame, FrameDecoder, FrameError, readFrames, END, END_FRAME } from "./framing.js";
export type { FrameOptions, ReadFramesOptions } from "./framing.js";
export { deflate, inflate, createLimitedInflate, InflateError } from "./compress.js";
export { toJson, bytesToHex, macToString } from "./show.js";
