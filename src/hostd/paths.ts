// Where hostd keeps a unikernel's files (pure: paths only). The one place block device
// paths are built: the block commands (blockstore.ts) and the tender's `--block:` arguments
// (vmmd.ts) both use blockFile.
import { join } from "node:path";
import { nameFileComponent, nameToString, type Name } from "../core/name.js";

/** `<tmpdir>/<name>.img`: the unikernel's inflated image (trailing slashes of tmpdir dropped). */
export const imagePath = (o: { readonly tmpdir: string }, name: Name): string => `${o.tmpdir.replace(/\/+$/, "")}/${nameToString(name)}.img`;

/** `<tmpdir>/fifo`: the console FIFOs (hostd makes them, the console daemon reads them). */
export const fifoDir = (tmpdir: string): string => join(tmpdir, "fifo");

/**
 * The FIFO directory's mode: setgid, so that the FIFOs are its group's, which the console
 * daemon runs in when it is not root (the systemd units, `up --user`).
 */
export const FIFO_DIR_MODE = 0o2770;

/** `<tmpdir>/fifo/<name>`: its console FIFO. */
export const fifoPath = (o: { readonly tmpdir: string }, name: Name): string => `${o.tmpdir.replace(/\/+$/, "")}/fifo/${nameToString(name)}`;

/** `<dbdir>/block`: the block devices' files. */
export const blockDir = (dbdir: string): string => join(dbdir, "block");

/** `<dbdir>/block/<block name>`: a block device's file. */
export const blockFile = (dbdir: string, name: Name): string => join(blockDir(dbdir), nameFileComponent(name));
