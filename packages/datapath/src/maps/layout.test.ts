import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_LAYOUTS } from './layout.js';

const BUILD = join(__dirname, '..', '..', '..', '..', 'bpf', 'build');

interface BtfType {
  kind: string;
  name: string;
  size: number;
  members?: Array<{ name: string; bits_offset: number }>;
}

describe('map struct layouts match the compiled C (BTF)', () => {
  for (const object of ['bpf_lxc.o', 'bpf_overlay.o', 'bpf_host.o']) {
    it(`in ${object}`, function () {
      const path = join(BUILD, object);
      if (!existsSync(path)) this.skip(); // built by `npm run build`
      const btf = JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', path, '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as { types: BtfType[] };
      const structs = new Map(btf.types.filter((t) => t.kind === 'STRUCT').map((t) => [t.name, t]));
      for (const layout of ALL_LAYOUTS) {
        const s = structs.get(layout.name);
        assert.ok(s, `struct ${layout.name} is in the BTF of ${object}`);
        assert.equal(s.size, layout.size, `sizeof(struct ${layout.name})`);
        const offsets = Object.fromEntries(s.members!.map((m) => [m.name, m.bits_offset / 8]));
        assert.deepEqual(offsets, layout.offsets, `offsets of struct ${layout.name}`);
      }
    });
  }
});
