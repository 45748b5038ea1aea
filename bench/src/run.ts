/** `npm run bench -- NAME`: runs one benchmark; its last stdout line is the JSON result. */
const benches: Record<string, () => Promise<unknown>> = {
  identity: async () => (await import('./identity.js')).main(),
  mapupdate: async () => (await import('./mapupdate.js')).main(),
  policy: async () => (await import('./policy.js')).main(),
  endpoint: async () => (await import('./endpoint.js')).main(),
  propagation: async () => (await import('./mesh.js')).propagation(),
  coldsync: async () => (await import('./mesh.js')).coldsync(),
  scale: async () => (await import('./scale.js')).scale(),
  encryption: async () => (await import('./encryption.js')).main(),
  /** The kernel lane's half of `encryption`, inside its guest. */
  'encryption-lane': async () => (await import('./encryption.js')).laneMain(),
  rotation: async () => (await import('./rotation.js')).main(),
  apply: async () => (await import('./apply.js')).main(),
  policyscale: async () => (await import('./policyscale.js')).main(),
  regenerate: async () => (await import('./regenerate.js')).main(),
  pods: async () => (await import('./pods.js')).main(),
  observe: async () => (await import('./observe.js')).main(),
  export: async () => (await import('./export.js')).main(),
  /** The `observe` benchmark's node and relay processes. */
  'observe-node': async () => (await import('./observe.js')).node(),
  'observe-relay': async () => (await import('./observe.js')).relay(),
};

async function run(): Promise<void> {
  const name = process.argv[2];
  const bench = name ? benches[name] : undefined;
  if (!bench) {
    process.stderr.write(`Cannot run benchmark ${JSON.stringify(name ?? '')}: choose one of ${Object.keys(benches).join(', ')}\n`);
    process.exit(2);
  }
  await bench();
}

run().catch((err) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
