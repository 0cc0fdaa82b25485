/**
 * JSON as Go's encoding/json writes it: `<`, `>` and `&` escaped as \u003c \u003e \u0026, U+2028 and
 * U+2029 escaped, and with an indent Go's MarshalIndent layout (empty arrays and objects stay `[]`, `{}`).
 */
export function goJson(value: unknown, indent?: string): string {
  const text = indent === undefined ? JSON.stringify(value) : JSON.stringify(value, null, indent);
  return (text ?? 'null').replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The same with object keys sorted, as Go marshals a map. */
export function goJsonSorted(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    return v;
  };
  return goJson(sort(value));
}
