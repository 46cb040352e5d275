// Key pairs: generation, PKCS#8 PEM at rest (optionally AES-256 encrypted), the signature
// algorithm that goes with each key type (cli.md §4), and signature verification.
//
// Keys live as node:crypto KeyObjects: OpenSSL reads plain and encrypted PKCS#8 and the
// traditional `RSA/EC PRIVATE KEY` forms upstream's ocaml-x509 also reads, synchronously.
// Certificates and CSRs are *signed* by @peculiar/x509's generators, which take WebCrypto
// keys: `signingKeys` bridges a KeyObject to a WebCrypto key pair plus the signing
// parameters (Node 20 has no KeyObject.toCryptoKey, so the bridge is a PKCS#8/SPKI
// export/import). Verification (`verifySignature`) stays on node:crypto: it runs on hostile
// input inside the strict parsers and must refuse algorithm/key mismatches itself.

import "reflect-metadata";
import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPair, verify as nodeVerify, webcrypto } from "node:crypto";
import { constants as fsc, promises as fs } from "node:fs";
import { promisify } from "node:util";
import { cryptoProvider } from "@peculiar/x509";
import { TAG, type Bytes } from "../commands/der.js";
import { bytesKey, LruCache } from "../core/lru.js";
import { firstLine } from "../core/text.js";
import { OID, bytesEqual } from "./asn1.js";
import type { AlgorithmIdentifier, SubjectPublicKeyInfo } from "./x509.js";

import { KEY_TYPES, type KeyType } from "./key-types.js";
export { KEY_TYPES, type KeyType };

export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

export function parseKeyType(s: string): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(s)) return s as KeyType;
  throw new KeyError(`unknown key type ${JSON.stringify(s)} (expected one of ${KEY_TYPES.join(", ")})`);
}

const genKeyPair = promisify(generateKeyPair);

/** A fresh private key of `type` (the public key is derived from it when needed). */
export async function generateKey(type: KeyType): Promise<KeyObject> {
  switch (type) {
    case "ed25519":
      return (await genKeyPair("ed25519")).privateKey;
    case "p256":
      return (await genKeyPair("ec", { namedCurve: "P-256" })).privateKey;
    case "p384":
      return (await genKeyPair("ec", { namedCurve: "P-384" })).privateKey;
    case "p521":
      return (await genKeyPair("ec", { namedCurve: "P-521" })).privateKey;
    case "rsa2048":
      return (await genKeyPair("rsa", { modulusLength: 2048, publicExponent: 0x10001 })).privateKey;
    case "rsa4096":
      return (await genKeyPair("rsa", { modulusLength: 4096, publicExponent: 0x10001 })).privateKey;
  }
}

/** The kind of a (private or public) key as far as albatross supports it. */
export type KeyKind = "ed25519" | "p256" | "p384" | "p521" | "rsa";

const kindCache = new WeakMap<KeyObject, KeyKind>();

export function keyKind(key: KeyObject): KeyKind {
  let k = kindCache.get(key);
  if (k === undefined) {
    k = computeKeyKind(key);
    kindCache.set(key, k);
  }
  return k;
}

function computeKeyKind(key: KeyObject): KeyKind {
  switch (key.asymmetricKeyType) {
    case "ed25519":
      return "ed25519";
    case "ec":
      switch (key.asymmetricKeyDetails?.namedCurve) {
        case "prime256v1":
          return "p256";
        case "secp384r1":
          return "p384";
        case "secp521r1":
          return "p521";
        default:
          throw new KeyError(`unsupported elliptic curve ${key.asymmetricKeyDetails?.namedCurve ?? "(unknown)"}`);
      }
    case "rsa": {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) throw new KeyError(`RSA key of ${bits} bits is too small (2048 at least)`);
      return "rsa";
    }
    default:
      throw new KeyError(`unsupported key type ${key.asymmetricKeyType ?? "(unknown)"}`);
  }
}

function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === "private" ? createPublicKey(key) : key;
}

/** DER SubjectPublicKeyInfo of a key (private keys: of their public half). */
// Deriving the public half of a private EC key is a scalar multiplication: remember it, as
// a CA key signs many certificates (AKI) in one process.
const spkiCache = new WeakMap<KeyObject, Bytes>();

export function spkiDer(key: KeyObject): Bytes {
  let s = spkiCache.get(key);
  if (s === undefined) {
    s = new Uint8Array(publicKeyOf(key).export({ type: "spki", format: "der" }));
    spkiCache.set(key, s);
  }
  return s;
}

// --- signature algorithms (cli.md §4) ---

interface SigAlg {
  readonly oid: string;
  /** node digest name, null for Ed25519 (pure) */
  readonly digest: string | null;
  readonly kind: "ed25519" | "ecdsa" | "rsa";
}

/** What `verifySignature` accepts (daemon.md §6); we only ever sign with the first five. */
const SIG_ALGS: readonly SigAlg[] = [
  { oid: OID.ed25519, digest: null, kind: "ed25519" },
  { oid: OID.ecdsaWithSHA256, digest: "sha256", kind: "ecdsa" },
  { oid: OID.ecdsaWithSHA384, digest: "sha384", kind: "ecdsa" },
  { oid: OID.ecdsaWithSHA512, digest: "sha512", kind: "ecdsa" },
  { oid: OID.sha256WithRSA, digest: "sha256", kind: "rsa" },
  { oid: OID.sha384WithRSA, digest: "sha384", kind: "rsa" },
  { oid: OID.sha512WithRSA, digest: "sha512", kind: "rsa" },
];

// --- signing through WebCrypto (for @peculiar/x509's generators) ---

/** The WebCrypto implementation the generators sign with; also made the library default. */
export const webCrypto: webcrypto.Crypto = webcrypto;
cryptoProvider.set(webCrypto);

type ImportParams = webcrypto.AlgorithmIdentifier | webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
type SignParams = webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;

/**
 * WebCrypto import and signing parameters per key kind, as albatross signs (cli.md §4):
 * Ed25519 pure, ECDSA with the hash matching the curve (P-521 with SHA-512), RSA PKCS#1 v1.5
 * with SHA-256 whatever the modulus size.
 */
const WEBCRYPTO_ALGS: Record<KeyKind, { readonly importParams: ImportParams; readonly sign: SignParams }> = {
  ed25519: { importParams: { name: "Ed25519" }, sign: { name: "Ed25519" } },
  p256: { importParams: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
  p384: { importParams: { name: "ECDSA", namedCurve: "P-384" }, sign: { name: "ECDSA", hash: "SHA-384" } },
  p521: { importParams: { name: "ECDSA", namedCurve: "P-521" }, sign: { name: "ECDSA", hash: "SHA-512" } },
  rsa: { importParams: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } },
};

export interface SigningKeys {
  /** non-extractable WebCrypto pair of the same key */
  readonly keys: webcrypto.CryptoKeyPair;
  /** the `signingAlgorithm` to hand to @peculiar/x509's generators */
  readonly algorithm: SignParams;
}

// A CA key signs many certificates in one process (benchmarks, tests, fixtures): import once.
const signingCache = new WeakMap<KeyObject, Promise<SigningKeys>>();

/** The WebCrypto form of a private KeyObject, for signing certificates and requests. */
export function signingKeys(key: KeyObject): Promise<SigningKeys> {
  let p = signingCache.get(key);
  if (p === undefined) {
    p = importSigningKeys(key);
    signingCache.set(key, p);
    p.catch(() => signingCache.delete(key));
  }
  return p;
}

async function importSigningKeys(key: KeyObject): Promise<SigningKeys> {
  if (key.type !== "private") throw new KeyError("signing needs a private key");
  const alg = WEBCRYPTO_ALGS[keyKind(key)];
  try {
    const [privateKey, publicKey] = await Promise.all([
      webCrypto.subtle.importKey("pkcs8", key.export({ type: "pkcs8", format: "der" }), alg.importParams, false, ["sign"]),
      webCrypto.subtle.importKey("spki", spkiDer(key), alg.importParams, true, ["verify"]),
    ]);
    return { keys: { privateKey, publicKey }, algorithm: alg.sign };
  } catch (e) {
    throw new KeyError(`cannot use the key for signing: ${firstLine(e)}`);
  }
}

/** A public key imported into node:crypto, with its kind. */
export interface PublicKey {
  readonly key: KeyObject;
  readonly kind: KeyKind;
}

// Importing a SubjectPublicKeyInfo into OpenSSL costs about 0.1 ms — more than verifying an
// Ed25519 signature — and the TLS endpoint verifies against the same few CA keys on every
// connection. Entries are keyed by the exact SPKI bytes (an import is a pure function of
// them); only usable keys are kept, and the bound caps what hostile input can pin.
const publicKeys = new LruCache<string, PublicKey>(256);

/** The key in a DER SubjectPublicKeyInfo, imported (once per distinct SPKI), or why it is unusable. */
export function publicKeyFromSpki(spki: Bytes): PublicKey | string {
  const cacheKey = bytesKey(spki);
  const hit = publicKeys.get(cacheKey);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (e) {
    return `unusable public key: ${firstLine(e)}`;
  }
  let kind: KeyKind;
  try {
    kind = keyKind(key);
  } catch (e) {
    return (e as Error).message;
  }
  const entry: PublicKey = { key, kind };
  publicKeys.set(cacheKey, entry);
  return entry;
}

/**
 * Verify `signature` over `data` by the key in `spki` under `algorithm`. Returns null when
 * valid, else the reason. Only SHA-2 based ECDSA/RSA PKCS#1 v1.5 and Ed25519 are accepted
 * (daemon.md §6), and the algorithm must fit the key (no ECDSA signature by an RSA key...).
 */
export function verifySignature(spki: SubjectPublicKeyInfo, algorithm: AlgorithmIdentifier, data: Bytes, signature: Bytes): string | null {
  const v = verification(spki, algorithm);
  if (typeof v === "string") return v;
  try {
    return nodeVerify(v.digest, data, v.key, signature) ? null : "invalid signature";
  } catch {
    return "invalid signature";
  }
}

/**
 * What verifySignature checks before the arithmetic (algorithm, its parameters, the key and
 * whether they fit): null when the signature could be verified, else why not — for a
 * signature whose arithmetic was done elsewhere with the same key (the TLS stack's).
 */
export function signatureUsable(spki: SubjectPublicKeyInfo, algorithm: AlgorithmIdentifier): string | null {
  const v = verification(spki, algorithm);
  return typeof v === "string" ? v : null;
}

/**
 * verifySignature, with the same checks and answers, but the signature arithmetic runs on
 * libuv's thread pool (node:crypto's asynchronous verify) instead of the event loop: the TLS
 * endpoint verifies a signature per connection, and meanwhile keeps serving the others.
 */
export function verifySignatureAsync(spki: SubjectPublicKeyInfo, algorithm: AlgorithmIdentifier, data: Bytes, signature: Bytes): Promise<string | null> {
  const v = verification(spki, algorithm);
  if (typeof v === "string") return Promise.resolve(v);
  return new Promise((resolve) => {
    try {
      nodeVerify(v.digest, data, v.key, signature, (e, good) => resolve(!e && good ? null : "invalid signature"));
    } catch {
      resolve("invalid signature");
    }
  });
}

/** The digest and key to verify with, after the algorithm/parameter/key checks; or why not. */
function verification(spki: SubjectPublicKeyInfo, algorithm: AlgorithmIdentifier): { digest: string | null; key: KeyObject } | string {
  const alg = SIG_ALGS.find((a) => a.oid === algorithm.oid);
  if (!alg) return `unsupported signature algorithm ${algorithm.oid}`;
  // Parameters: absent for Ed25519/ECDSA (RFC 8410, RFC 5758); NULL (or, leniently, absent) for RSA.
  if (alg.kind !== "rsa" && algorithm.params !== undefined) return `unexpected parameters for signature algorithm ${algorithm.oid}`;
  if (alg.kind === "rsa" && algorithm.params !== undefined && !bytesEqual(algorithm.params, Uint8Array.of(TAG.NULL, 0))) {
    return `unexpected parameters for signature algorithm ${algorithm.oid}`;
  }
  const pub = publicKeyFromSpki(spki.der);
  if (typeof pub === "string") return pub;
  const { key, kind } = pub;
  const fits = alg.kind === "ed25519" ? kind === "ed25519" : alg.kind === "rsa" ? kind === "rsa" : kind !== "ed25519" && kind !== "rsa";
  if (!fits) return `signature algorithm ${algorithm.oid} does not fit a ${kind} key`;
  return { digest: alg.digest, key };
}

// --- PEM at rest ---

/** PKCS#8 PEM; with a password `ENCRYPTED PRIVATE KEY` (PBES2, PBKDF2, AES-256-CBC). */
export function privateKeyToPem(key: KeyObject, password?: string): string {
  if (password !== undefined && password !== "") {
    return key.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: password }) as string;
  }
  return key.export({ type: "pkcs8", format: "pem" }) as string;
}

export function isEncryptedPem(pem: string): boolean {
  return /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(pem) || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
}

/**
 * Why `pem` cannot hold a private key, judged by its PEM block labels, or null when it has a
 * `... PRIVATE KEY` block. Without this, OpenSSL only says `DECODER routines::unsupported`
 * for the common mistake of giving a certificate (`foo.pem`) where its key (`foo.key`) belongs.
 */
function notAPrivateKey(pem: string): string | null {
  if (/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/m.test(pem)) return null;
  if (pem.trim() === "") return "not a private key (the file is empty)";
  const label = /^-----BEGIN ([\x20-\x2c\x2e-\x7e]{1,64})-----/m.exec(pem)?.[1];
  return label === undefined
    ? "not a private key (no PEM block found); give the .key file"
    : `not a private key (found a ${label} PEM block); give the .key file`;
}

/** Read a private key PEM (PKCS#8, encrypted PKCS#8, or traditional RSA/EC). */
export function privateKeyFromPem(pem: string, password?: string): KeyObject {
  const wrongKind = notAPrivateKey(pem);
  if (wrongKind !== null) throw new KeyError(wrongKind);
  const encrypted = isEncryptedPem(pem);
  if (encrypted && (password === undefined || password === "")) throw new KeyError("the private key is encrypted, a password is needed");
  let key: KeyObject;
  try {
    key = encrypted ? createPrivateKey({ key: pem, format: "pem", passphrase: password! }) : createPrivateKey({ key: pem, format: "pem" });
  } catch (e) {
    if (encrypted) throw new KeyError("cannot decrypt the private key (wrong password?)");
    const why = firstLine(e);
    // OpenSSL's text for a block it cannot decode names no block and no reason
    throw new KeyError(
      `cannot read the private key: ${/DECODER routines::unsupported/.test(why) ? "its PRIVATE KEY block does not decode (damaged, or a key format other than PKCS#8 or traditional RSA/EC)" : why}`,
    );
  }
  keyKind(key); // refuse unsupported types early
  return key;
}

export async function readPrivateKeyFile(path: string, password?: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await fs.readFile(path, "utf8");
  } catch (e) {
    throw new KeyError(`cannot read ${path}: ${firstLine(e)}`);
  }
  try {
    return privateKeyFromPem(pem, password);
  } catch (e) {
    throw new KeyError(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Write `key` to `path` as PKCS#8 PEM, mode 0600, created exclusively: an existing file is
 * never replaced (O_EXCL), so a key can not be lost by accident.
 */
export async function writePrivateKeyFile(path: string, key: KeyObject, password?: string): Promise<void> {
  await writeNewFile(path, privateKeyToPem(key, password), 0o600);
}

/**
 * Is there anything (a link counts, not followed) at `path`? Absence is false; any other
 * failure (EACCES, ENOTDIR, ...) is thrown as `error("cannot access <path>: <reason>")`, in
 * the caller's own error class.
 */
export async function pathExists(path: string, error: (message: string) => Error): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error(`cannot access ${path}: ${(e as Error).message}`);
  }
}

/** Create `path` with `data`; fails if it exists (unless `overwrite`). */
export async function writeNewFile(path: string, data: string | Bytes, mode: number, overwrite = false): Promise<void> {
  const flags = overwrite ? fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC : fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, flags | fsc.O_NOFOLLOW, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new KeyError(`${path} already exists, not overwriting it`);
    throw new KeyError(`cannot write ${path}: ${firstLine(e)}`);
  }
  try {
    if (overwrite) await fh.chmod(mode);
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** Compare after a round trip through OpenSSL, so equal keys in different encodings match. */
export function keyMatchesSpki(key: KeyObject, spki: Bytes): boolean {
  try {
    const other = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    return bytesEqual(spkiDer(key), spkiDer(other));
  } catch {
    return false;
  }
}
