// The import rules of src/ (issue 11), checked by `npm run lint` (dependency-cruiser):
// no cycles between files, and the folders form layers — a folder imports only folders
// below it; the daemons (one layer) never import each other; cli/ is the top.
// Type-only imports count. Bottom to top (README.md, "Layout"):
const LAYERS = [
  ["core"], // names/labels/paths, Result, trie, AVL, LRU, sets, hex, exit codes
  ["commands"], // wire model, strict DER codec, framing, bounded zlib
  ["policy"], // policies, narrowing, accounting
  ["solo5"], // ELF notes, manifest, tenders
  ["ca"], // CA, CSRs, chain -> (name, policies, command)
  ["transport"], // the frame reader over Unix/TLS sockets, uploads, routing table, listen
  ["hostd", "console", "stats"], // the daemons
  ["endpoint"], // the TLS endpoint server
  ["client"], // local and remote client, replies, update
  ["fleet"], // fleets of hosts: builds, rollouts (over the client)
  ["up"], // dromedary up: runs the daemons as processes (imports none of them)
  ["systemd"], // unit files
  ["cli"], // the command line
];

const known = LAYERS.flat();
const alt = (xs) => `^src/(${xs.join("|")})/`;

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((folder) => {
    // the folders it must not import: same layer (other than itself) and every layer above
    const banned = [...layer.filter((f) => f !== folder), ...LAYERS.slice(i + 1).flat()];
    return {
      name: `layer-${folder}`,
      comment: `src/${folder}/ may import only ${known.slice(0, known.indexOf(layer[0])).join(", ") || "nothing in src/"} (folders below it)`,
      severity: "error",
      from: { path: `^src/${folder}/` },
      to: { path: alt(banned) },
    };
  }).filter((r) => r.to.path !== "^src/()/"),
);

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "no import cycles between files",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "known-folder",
      comment: `every module of src/ lives in one of the layers' folders (${known.join(", ")}); a new folder is added to .dependency-cruiser.cjs`,
      severity: "error",
      from: { path: "^src/", pathNot: alt(known) },
      to: {},
    },
    {
      name: "no-unresolvable",
      comment: "every import resolves",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
