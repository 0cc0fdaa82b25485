/**
 * The names by which a layer deletes what the layers below it hold (AUFS whiteouts, as Docker and the OCI
 * image spec write them). Their own module: reading a layer's names needs them, not the unpacker.
 */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
