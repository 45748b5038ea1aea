/**
 * The constants user space shares with bpf/ are defined in the C headers and mirrored in
 * TypeScript; this test is what keeps the two one source: every numeric constant @weft/datapath
 * exports for the maps, the reserved identities the datapath names, the identity layout and the
 * flow verdicts equal their #define in bpf/lib/*.h. (Struct sizes and offsets are compared with
 * the objects' BTF in packages/datapath/src/maps/layout.test.ts; drop reasons in reasons.test.ts.)
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as datapath from '@weft/datapath';
import { IDENTITY_MAX, LOCAL_ID_MAX, LOCAL_ID_MIN, ReservedIdentity } from '@weft/identity';
import { CIDR_ID_MAX, CIDR_ID_MIN } from './cidr-identities.js';

const LIB = join(__dirname, '..', '..', '..', 'bpf', 'lib');

/** Every `#define NAME <number>` of bpf/lib/*.h (decimal or hex), by name. */
function cDefines(): Map<string, number> {
  const out = new Map<string, number>();
  for (const file of readdirSync(LIB).filter((f) => f.endsWith('.h'))) {
    for (const m of readFileSync(join(LIB, file), 'utf8').matchAll(/^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b/gm)) {
      assert.ok(!out.has(m[1]!) || out.get(m[1]!) === Number(m[2]), `${m[1]} is defined once (again in ${file})`);
      out.set(m[1]!, Number(m[2]));
    }
  }
  return out;
}

/** The TypeScript names that differ from their C name. */
const C_NAME: Record<string, string> = { MARK_IDENTITY_MAGIC: 'MARK_MAGIC_IDENTITY' };
/** Exported numbers of @weft/datapath that are no C constant (with why). */
const TS_ONLY = new Set([
  'CT_COUNT_SLOTS', // weft_ct_count's size: one slot per 16-bit ep_id (compared with the map below)
  'DROP_CT_FULL', // drop reasons: reasons.test.ts
  'DROP_CT_QUOTA',
  'BPF_ANY', // bpf(2)'s own flags and libbpf's log levels, not Weft's
  'BPF_NOEXIST',
  'BPF_EXIST',
  'LIBBPF_WARN',
  'LIBBPF_INFO',
  'LIBBPF_DEBUG',
  'IPPROTO_ICMP', // the kernel's
  'IPPROTO_TCP',
  'IPPROTO_UDP',
]);

describe('constants shared with bpf/', () => {
  const c = cDefines();

  it('every numeric constant @weft/datapath exports equals its #define in bpf/lib', () => {
    const numbers = Object.entries(datapath as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number' && /^[A-Z][A-Z0-9_]+$/.test(e[0]));
    assert.ok(numbers.length > 30, `found the constants (${numbers.length})`);
    for (const [name, value] of numbers) {
      if (TS_ONLY.has(name)) continue;
      const cName = C_NAME[name] ?? name;
      assert.ok(c.has(cName), `${name} has a #define ${cName} in bpf/lib (or is listed as TypeScript-only, with why)`);
      assert.equal(value, c.get(cName), `${name} = #define ${cName}`);
    }
  });

  it('the identity layout and the reserved identities the datapath names match @weft/identity', () => {
    assert.equal(c.get('IDENTITY_MASK'), IDENTITY_MAX);
    assert.equal(c.get('IDENTITY_HOST'), ReservedIdentity.host);
    assert.equal(c.get('IDENTITY_WORLD'), ReservedIdentity.world);
    assert.equal(c.get('IDENTITY_REMOTE_NODE'), ReservedIdentity['remote-node']);
    // Node-local CIDR identities: cluster bits 0, the local range; weft_policy_cidrs holds them all.
    assert.deepEqual([c.get('CIDR_IDENTITY_MIN'), c.get('CIDR_IDENTITY_MAX')], [CIDR_ID_MIN, CIDR_ID_MAX]);
    assert.deepEqual([CIDR_ID_MIN, CIDR_ID_MAX], [LOCAL_ID_MIN, LOCAL_ID_MAX]);
  });

  it('the flow verdicts and the fixed map sizes match', () => {
    const verdicts = Object.fromEntries([...c].filter(([n]) => n.startsWith('VERDICT_')).map(([n, v]) => [v, n.slice('VERDICT_'.length)]));
    assert.deepEqual(verdicts, datapath.Verdict);
    const maps = readFileSync(join(LIB, 'maps.h'), 'utf8');
    const ctCount = /__uint\(max_entries, (\d+)\);\s*__uint\(pinning, LIBBPF_PIN_BY_NAME\);\s*\} weft_ct_count /m.exec(maps);
    assert.ok(ctCount, 'weft_ct_count is declared with a numeric size');
    assert.equal(Number(ctCount[1]), datapath.CT_COUNT_SLOTS);
  });
});
