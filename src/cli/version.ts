// The version `dromedary --version` prints: the package's, and the albatross wire protocol
// version it speaks (wire.md §1), in albatross-client's words.
export const VERSION_NUMBER = "0.1.0";
export const VERSION = `version ${VERSION_NUMBER} protocol version 5`;
