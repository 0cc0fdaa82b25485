/**
 * JSON as Go's encoding/json writes it: `<`, `>` and `&` escaped as \u003c \u003e \u0026, U+2028 and
 * U+2029 escaped, and with an indent Go's MarshalIndent layout (empty arrays and objects stay `[]`, `{}`).
 */
export function goJson(value: unknown, indent?: string): string {
  const text = indent === undefined ? JSON.stringify(value) : JSON.stringify(value, null, indent);
  return (text ?? 'null').replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A copy with every object's keys sorted: how a value looks once Go has decoded it into maps. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  return value;
}

/** JSON with object keys sorted, as Go marshals a map. */
export function goJsonSorted(value: unknown): string {
  return goJson(sortKeys(value));
}
