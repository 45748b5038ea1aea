export { runPlugin, CniError, SUPPORTED_VERSIONS, type PluginOutput } from './plugin.js';
