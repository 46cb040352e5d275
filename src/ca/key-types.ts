// The key types Dromedary generates: their names only, without the crypto (src/ca/keys.ts),
// so that a command line can offer them without loading the certificate libraries.
export type KeyType = "ed25519" | "p256" | "p384" | "p521" | "rsa2048" | "rsa4096";
export const KEY_TYPES: readonly KeyType[] = ["ed25519", "p256", "p384", "p521", "rsa2048", "rsa4096"];
