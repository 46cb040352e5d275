// The process launcher's helper process (launcher.ts): creates hostd's child processes
// while staying small. Started by hostd with an IPC channel; exits when the channel closes
// (hostd ended or died). Its tenders then keep running and are reaped by the next hostd.
import { execHere, type FromHelper, type ToHelper } from "./launcher.js";
import { spawnWithFifo } from "./spawn.js";

const send = (m: FromHelper): void => {
  if (process.connected) process.send?.(m);
};

process.on("disconnect", () => process.exit(0));
process.on("SIGPIPE", () => undefined);
// hostd's signals are hostd's: a SIGTERM/SIGINT to the process group must not take the
// helper (and with it the exit statuses of the tenders) away before hostd has shut down
process.on("SIGTERM", () => undefined);
process.on("SIGINT", () => undefined);

process.on("message", (m: ToHelper) => {
  if (m.t === "run") {
    void execHere(m.file, m.args, m.o).then((r) => send({ t: "ran", id: m.id, r }));
    return;
  }
  void spawnWithFifo(m.argv, m.fifo).then((r) => {
    if (!r.ok) return send({ t: "spawned", id: m.id, error: r.error });
    const pid = r.value.pid;
    send({ t: "spawned", id: m.id, pid });
    void r.value.exited.then((status) => send({ t: "exit", pid, status }));
  });
});

send({ t: "ready" } as unknown as FromHelper);
