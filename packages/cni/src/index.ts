export { runPlugin, CniError, SUPPORTED_VERSIONS, type PluginOutput } from './plugin.js';
export { installCni, uninstallCni, conflist, pluginModules, PLUGIN_NAME, CONFLIST_NAME, DEFAULT_AGENT_SOCKET, type CniInstallOptions, type CniInstallResult, type CniUninstallResult } from './install.js';
export { CniInstallError, CniFileConflictError, errorCodes } from './errors.js';
