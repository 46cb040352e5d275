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
  encodeCertExtension,
  decodeCertExtension,
  encodeState,
  decodeState,
} from "./codec.js";
export { encodeFrame, FrameDecoder, END } from "./framing.js";
