export { parsePolicy, parseNetworkPolicy, parseWeftPolicy } from './parse.js';
export {
  resolveEndpoint,
  selects,
  policyCidrs,
  PROTOCOL_NUMBER,
  type PolicyEntry,
  type EndpointPolicy,
  type EndpointView,
  type NamedPort,
  type PolicyUniverse,
  type IdentityView,
  type CidrIdentityView,
} from './resolve.js';
export { EndpointRules, type EntryChanges, type RulesUniverse, type Selection } from './endpoint-rules.js';
export { matches, isEmptySelector, EMPTY_SELECTOR } from './selector.js';
export { rangeToPrefixes, prefixContains, type PortPrefix } from './ports.js';
export { parseCidr, parseIpv4, formatIpv4, formatCidr, cidrContains, type Cidr } from '@weft/common';
export { CidrSet } from './cidr-set.js';
export { InvalidPolicyError, errorCodes } from './errors.js';
export type * from './types.js';
export { SelectorCache, CachedSelector, selectsIdentity, selectorKey, isIdentityPeer, type IdentityPeer, type EndpointsPeer, type SelectionUser, type IdentityLabels } from './selector-cache.js';
export { PORT_NAME_RE } from './types.js';
