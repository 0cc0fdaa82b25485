/**
 * JSON as dockerd reads it: Go's encoding/json, with its words. A request's JSON is parsed here (its
 * syntax errors are Go's scanner's: `invalid character '}' in literal true (expecting 'e')`), then
 * decoded against a Shape, the Go type the Engine API declares (its type errors are Go's:
 * `json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string`).
 * Like Go: field names match regardless of case, unknown fields are ignored, null leaves a field
 * unset, numbers keep their text (so `1.0` is no int64), and nesting stops at 10,000 levels.
 */
import { KilnError } from '../errors.js';

/** A JSON number, as written: Go decides by its text whether it fits the type. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** A JSON object: its members in order (a key may repeat; the last wins, as in Go). */
export class JsonObject {
  constructor(readonly members: readonly (readonly [string, Json])[]) {}
}

export type Json = null | boolean | string | JsonNumber | readonly Json[] | JsonObject;

/**
 * How the text is read: `stream` as dockerd reads a request body (Go's json.Decoder: the first value,
 * whatever follows; nothing at all is `EOF`), `whole` as it reads a query parameter (json.Unmarshal:
 * the text is one value and nothing else).
 */
export type JsonMode = 'stream' | 'whole';

/** Go's json.Decoder's limit (`exceeded max depth`). */
const MAX_DEPTH = 10_000;

const invalid = (message: string): KilnError => new KilnError('INVALID_INPUT', message);

/** A character as Go's scanner quotes it in an error: 'x', '\n', '\x01'. */
function quoteChar(char: string): string {
  const escapes: Readonly<Record<string, string>> = { "'": "\\'", '\\': '\\\\', '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };
  const code = char.charCodeAt(0);
  const shown = escapes[char] ?? (code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : char);
  return `'${shown}'`;
}

const isSpace = (char: string | undefined): boolean => char === ' ' || char === '\t' || char === '\n' || char === '\r';
const isDigit = (char: string | undefined): boolean => char !== undefined && char >= '0' && char <= '9';

/** Parses one JSON value, failing with Go's words (iteratively: a deep nesting costs no stack). */
export function parseJson(text: string, mode: JsonMode): Json {
  const truncated = mode === 'stream' ? 'unexpected EOF' : 'unexpected end of JSON input';
  let at = 0;
  const fail = (context: string): KilnError => (at >= text.length ? invalid(truncated) : invalid(`invalid character ${quoteChar(text.charAt(at))} ${context}`));
  const skipSpace = (): void => {
    while (isSpace(text[at])) at++;
  };
  const digits = (): void => {
    while (isDigit(text[at])) at++;
  };
  const readString = (): string => {
    const start = ++at;
    let escaped = false;
    for (;;) {
      const char = text[at];
      if (char === undefined) throw invalid(truncated);
      if (char === '"') break;
      if (char === '\\') {
        escaped = true;
        const next = text[++at];
        if (next === 'u') {
          for (let i = 0; i < 4; i++) if (!/^[0-9a-fA-F]$/.test(text[++at] ?? '')) throw fail('in \\u hexadecimal character escape');
        } else if (next === undefined || !'"\\/bfnrt'.includes(next)) throw fail('in string escape code');
      } else if (char.charCodeAt(0) < 0x20) throw fail('in string literal');
      at++;
    }
    const raw = text.slice(start, at++);
    // The escapes are checked above; JSON.parse turns them into characters.
    return escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
  };
  const readKey = (): string => {
    if (text[at] !== '"') throw fail('looking for beginning of object key string');
    const key = readString();
    skipSpace();
    if (text[at] !== ':') throw fail('after object key');
    at++;
    skipSpace();
    return key;
  };
  const readLiteral = <T>(word: string, value: T): T => {
    for (let i = 1; i < word.length; i++) {
      if (text[at + i] !== word[i]) {
        at += i;
        throw fail(`in literal ${word} (expecting ${quoteChar(word.charAt(i))})`);
      }
    }
    at += word.length;
    return value;
  };
  const readNumber = (): JsonNumber => {
    const start = at;
    if (text[at] === '-') at++;
    if (text[at] === '0') at++;
    else if (isDigit(text[at])) digits();
    else throw fail('in numeric literal');
    if (text[at] === '.') {
      at++;
      if (!isDigit(text[at])) throw fail('after decimal point in numeric literal');
      digits();
    }
    if (text[at] === 'e' || text[at] === 'E') {
      at++;
      if (text[at] === '+' || text[at] === '-') at++;
      if (!isDigit(text[at])) throw fail('in exponent of numeric literal');
      digits();
    }
    return new JsonNumber(text.slice(start, at));
  };
  const readScalar = (): Json => {
    const char = text[at];
    if (char === '"') return readString();
    if (char === '-' || isDigit(char)) return readNumber();
    if (char === 't') return readLiteral('true', true);
    if (char === 'f') return readLiteral('false', false);
    if (char === 'n') return readLiteral('null', null);
    throw fail('looking for beginning of value');
  };

  skipSpace();
  if (at >= text.length) throw invalid(mode === 'stream' ? 'EOF' : truncated);
  // The arrays and objects open around the current value; each loop reads one value at `at`.
  const open: ({ readonly items: Json[] } | { readonly members: [string, Json][]; key: string })[] = [];
  for (;;) {
    let value: Json;
    const char = text[at];
    if (char === '[' || char === '{') {
      if (open.length >= MAX_DEPTH) throw fail('exceeded max depth');
      at++;
      skipSpace();
      if (char === '[' && text[at] === ']') {
        at++;
        value = [];
      } else if (char === '{' && text[at] === '}') {
        at++;
        value = new JsonObject([]);
      } else {
        open.push(char === '[' ? { items: [] } : { members: [], key: readKey() });
        continue;
      }
    } else value = readScalar();
    // A value is complete: it joins its container, which may end here too.
    for (;;) {
      const container = open.at(-1);
      if (!container) {
        if (mode === 'whole') {
          skipSpace();
          if (at < text.length) throw fail('after top-level value');
        }
        return value;
      }
      skipSpace();
      if ('items' in container) container.items.push(value);
      else container.members.push([container.key, value]);
      if (text[at] === ',') {
        at++;
        skipSpace();
        if ('members' in container) container.key = readKey();
        break;
      }
      if ('items' in container ? text[at] !== ']' : text[at] !== '}') throw fail('items' in container ? 'after array element' : 'after object key:value pair');
      at++;
      open.pop();
      value = 'items' in container ? container.items : new JsonObject(container.members);
    }
  }
}

/** Where a value sits, for Go's error: the innermost struct's name and the field path from the top. */
interface Where {
  readonly struct?: string;
  readonly path: readonly string[];
}

/** A Go type kiln reads from JSON: `decode` gives the value, or undefined for null (Go's zero value). */
export interface Shape<T> {
  readonly go: string;
  /** The value an element or map value that is null takes. */
  readonly zero: T;
  decode(value: Json, where: Where): T | undefined;
}

export type Decoded<S> = S extends Shape<infer T> ? T : never;

function kindOf(value: Json): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'string') return 'string';
  if (value instanceof JsonNumber) return 'number';
  return value instanceof JsonObject ? 'object' : 'array';
}

/** Go's UnmarshalTypeError; a number that does not fit shows its text. */
function mismatch(value: Json, go: string, where: Where, showNumber = false): KilnError {
  const what = showNumber && value instanceof JsonNumber ? `number ${value.text}` : kindOf(value);
  const into = where.struct !== undefined ? `Go struct field ${where.struct}.${where.path.join('.')}` : 'Go value';
  return invalid(`json: cannot unmarshal ${what} into ${into} of type ${go}`);
}

/** A Go type whose JSON null is its zero value (leaves a field unset); `read` gets any other value. */
function shape<T>(go: string, zero: T, read: (value: Exclude<Json, null>, where: Where) => T): Shape<T> {
  return { go, zero, decode: (value, where) => (value === null ? undefined : read(value, where)) };
}

/** A Go type that a JSON object decodes to: a map or a struct. */
function fromObject<T>(go: string, zero: T, read: (value: JsonObject, where: Where) => T): Shape<T> {
  return shape(go, zero, (value, where) => {
    if (!(value instanceof JsonObject)) throw mismatch(value, go, where);
    return read(value, where);
  });
}

function scalar<T extends Json>(go: string, zero: T, accept: (value: Json) => value is T): Shape<T> {
  return shape(go, zero, (value, where) => {
    if (!accept(value)) throw mismatch(value, go, where);
    return value;
  });
}

export const string = (go = 'string'): Shape<string> => scalar<string>(go, '', (value): value is string => typeof value === 'string');
export const bool: Shape<boolean> = scalar<boolean>('bool', false, (value): value is boolean => typeof value === 'boolean');

/** A Go integer type: int, int64 (both 64 bits here), uint, uint16, ... */
export function integer(go: 'int' | 'int64' | 'uint' | 'uint16' | 'uint64'): Shape<number> {
  const bits = go === 'uint16' ? 16n : 64n;
  const [min, max] = go.startsWith('u') ? [0n, (1n << bits) - 1n] : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  return shape(go, 0, (value, where) => {
    if (!(value instanceof JsonNumber)) throw mismatch(value, go, where);
    if (!/^-?\d+$/.test(value.text) || BigInt(value.text) < min || BigInt(value.text) > max) throw mismatch(value, go, where, true);
    return Number(value.text);
  });
}

/** A Go pointer (`*string`): null stays null rather than the zero value. */
export function pointer<T>(target: Shape<T>): Shape<T | null> {
  return { go: `*${target.go}`, zero: null, decode: (value, where) => (value === null ? null : target.decode(value, where)) };
}

const element = <T>(of: Shape<T>, value: Json, where: Where): T => {
  const decoded = of.decode(value, where);
  return decoded === undefined ? of.zero : decoded;
};

/** A Go slice (`[]T`), or with `length` an array (`[2]uint`: extra elements are dropped, missing ones zero). */
export function array<T>(of: Shape<T>, options: { go?: string; length?: number } = {}): Shape<T[]> {
  const go = options.go ?? `${options.length !== undefined ? `[${options.length}]` : '[]'}${of.go}`;
  return shape(go, [], (value, where) => {
    if (!Array.isArray(value)) throw mismatch(value, go, where);
    const items = (value as readonly Json[]).slice(0, options.length).map((item) => element(of, item, where));
    while (options.length !== undefined && items.length < options.length) items.push(of.zero);
    return items;
  });
}

/** A Go map with string keys; its keys are the client's, so they become own properties (a `__proto__` key is data). */
export function map<T>(of: Shape<T>, go = `map[string]${of.go}`): Shape<Readonly<Record<string, T>>> {
  return fromObject(go, {}, (value, where) => Object.fromEntries(value.members.map(([key, item]) => [key, element(of, item, where)])));
}

type Fields = Readonly<Record<string, Shape<unknown>>>;
export type StructOf<F extends Fields> = { readonly [K in keyof F]?: Decoded<F[K]> };

/**
 * A Go struct (`go` is its qualified name, `container.HostConfig`). Keys match its fields exactly or
 * else regardless of case, as Go matches them; other keys are ignored. A struct embedded in Go (its
 * fields promoted) is written here with those fields listed in it.
 */
export function struct<F extends Fields>(go: string, fields: F): Shape<StructOf<F>> {
  const name = go.slice(go.lastIndexOf('.') + 1);
  const folded = new Map(Object.keys(fields).map((key) => [key.toLowerCase(), key]));
  return fromObject(go, {}, (value, where) => {
    const result: Record<string, unknown> = {};
    for (const [key, item] of value.members) {
      const field = Object.hasOwn(fields, key) ? key : folded.get(key.toLowerCase());
      const of = field === undefined ? undefined : fields[field];
      if (field === undefined || of === undefined) continue;
      const decoded = of.decode(item, { struct: name, path: [...where.path, field] });
      if (decoded !== undefined) result[field] = decoded;
    }
    return result as StructOf<F>;
  });
}

/** Docker's strslice.StrSlice: a list of strings, or one string for a list of one. */
export const strSlice: Shape<string[]> = shape('strslice.StrSlice', [], (value, where) => {
  if (typeof value === 'string') return [value];
  // Go tries []string, then string: the error it reports is the second's.
  if (!Array.isArray(value) || !(value as readonly Json[]).every((item) => typeof item === 'string' || item === null)) throw mismatch(value, 'string', where);
  return (value as readonly (string | null)[]).map((item) => item ?? '');
});

/** Decodes JSON text as the shape's type; a null document is undefined (as Go leaves its target). */
export function decodeJson<T>(text: string, shape: Shape<T>, mode: JsonMode): T | undefined {
  return shape.decode(parseJson(text, mode), { path: [] });
}
