/** The configuration model: typed objects, YAML loading and validation. */
export * from './types.js';
export { parseDurationMs, isGatewayDuration } from './duration.js';
export { validateObject, SUPPORTED_KINDS_TEXT, type ValidateResult, type ValidateOptions, type PriorError } from './validate.js';
export { parseManifests, loadManifestPath, validatePaths, dropDuplicates } from './parse.js';
export { hasErrors, problemsError } from './problems.js';
export { DATAPLANE_MODE_LABEL } from './validate-core.js';
export { WAYPOINT_GATEWAY_CLASS } from './validate-gateway.js';
