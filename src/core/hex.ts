// Bytes as lower-case hex digits, without separators. Pure.

export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
