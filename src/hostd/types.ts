// Types shared by the pure core (vmmd.ts) and the shell of hostd.

/** How a unikernel (tender) process ended. */
export type ExitStatus =
  | { readonly kind: "exited"; readonly code: number }
  | { readonly kind: "signaled"; readonly signal: string }
  | { readonly kind: "stopped"; readonly signal: string };

export function formatExit(s: ExitStatus): string {
  switch (s.kind) {
    case "exited":
      return `exited with ${s.code}`;
    case "signaled":
      return `killed by signal ${s.signal}`;
    case "stopped":
      return `stopped by signal ${s.signal}`;
  }
}
