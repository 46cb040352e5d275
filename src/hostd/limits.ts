// The defaults of hostd's bounds, in a module of their own so that the command line need
// not load hostd (the socket limits shared with the console daemon: transport/limits.ts).

/** Default of hostd's --max-image-size: the largest inflated image (image.ts). */
export const DEFAULT_MAX_IMAGE_SIZE = 256 * 1024 * 1024;
/** Default of hostd's --max-request-memory (transport/requests.ts MemoryBudget). */
export const DEFAULT_MAX_REQUEST_MEMORY = 1024 * 1024 * 1024;
