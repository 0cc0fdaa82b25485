/**
 * License names as packages write them, turned into SPDX expressions: SPDX ids as they are (case fixed),
 * Debian's short names (DEP-5: `GPL-2+`, `Expat`, `BSD-3-clause`) and rpm's old ones (`GPLv2+`) mapped to
 * the SPDX id they mean. A name that maps to no SPDX id makes the whole expression unknown (null): kiln
 * does not guess at a license.
 */
import { fixupSpdxId } from '@cyclonedx/cyclonedx-library/SPDX';

/** Debian's and rpm's short names that are not SPDX ids, lowercased. */
const ALIASES: Readonly<Record<string, string>> = {
  expat: 'MIT',
  'bsd-2-clause': 'BSD-2-Clause',
  'bsd-3-clause': 'BSD-3-Clause',
  'bsd-4-clause': 'BSD-4-Clause',
  artistic: 'Artistic-1.0-Perl',
  'artistic-1.0': 'Artistic-1.0-Perl',
  'psf-2': 'PSF-2.0',
  'public-domain': '',
  asl: 'Apache-2.0',
  'asl 2.0': 'Apache-2.0',
  'apache-2': 'Apache-2.0',
  mpl: 'MPL-1.1',
  'mpl-2': 'MPL-2.0',
  'zlib/libpng': 'zlib-acknowledgement',
};

/** GPL, LGPL, AGPL and GFDL in Debian's (`GPL-2+`, `LGPL-2.1`) and rpm's (`GPLv2+`, `LGPLv2`) spellings. */
const FAMILY = /^(a|l|)gpl|^gfdl/;
const VERSIONED = /^(agpl|lgpl|gpl|gfdl)(?:-|v|\s)?(\d)(?:\.(\d))?(\+|-or-later|-only)?$/;

/** Names seen before: the same few names recur across hundreds of packages. */
const known = new Map<string, string | undefined>();

/** The SPDX id one license name means, or undefined. */
export function spdxId(name: string): string | undefined {
  if (known.has(name)) return known.get(name);
  const id = lookUp(name);
  known.set(name, id);
  return id;
}

function lookUp(name: string): string | undefined {
  const lower = name.trim().toLowerCase();
  const alias = ALIASES[lower];
  if (alias !== undefined) return alias === '' ? undefined : alias;
  const versioned = VERSIONED.exec(lower);
  if (versioned && FAMILY.test(lower)) {
    const [, family = '', major = '', minor = '0', suffix] = versioned;
    const later = suffix === '+' || suffix === '-or-later';
    return `${family.toUpperCase()}-${major}.${minor}-${later ? 'or-later' : 'only'}`;
  }
  return fixupSpdxId(name.trim());
}

/** An exception named after WITH (`Classpath-exception-2.0`, `GCC-exception-3.1`). */
const EXCEPTION = /^[A-Za-z0-9.+-]*exception[A-Za-z0-9.+-]*$/i;

/**
 * An SPDX expression from a license field: names joined by AND/OR (or `and`, `or`, `|`, `,` as Debian and
 * rpm write them), WITH an exception, in parentheses. Null when a name is not a license kiln can name.
 */
export function spdxExpression(text: string | undefined | null): string | null {
  if (text === undefined || text === null) return null;
  const tokens = text.replace(/[()]/g, ' $& ').replace(/\s*\|\s*/g, ' OR ').replace(/\s*,\s*/g, ' AND ').trim().split(/\s+/);
  if (tokens.length === 0 || tokens[0] === '') return null;
  const out: string[] = [];
  // Multi-word names (`ASL 2.0`, `Public Domain`) are joined with the next word when that makes a name.
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    const upper = token.toUpperCase();
    if (upper === 'AND' || upper === 'OR' || upper === 'WITH') {
      if (out.length === 0 || i === tokens.length - 1) return null;
      out.push(upper);
    } else if (token === '(' || token === ')') out.push(token);
    else if (out.at(-1) === 'WITH') {
      if (!EXCEPTION.test(token)) return null;
      out.push(token);
    } else {
      const joined = i + 1 < tokens.length ? spdxId(`${token} ${tokens[i + 1] as string}`) : undefined;
      if (joined !== undefined && !/^(and|or|with)$/i.test(tokens[i + 1] as string)) {
        out.push(joined);
        i++;
        continue;
      }
      const id = spdxId(token);
      if (id === undefined) return null;
      out.push(id);
    }
  }
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
}

/** Several expressions that all hold (a package under more than one license): joined by AND, each in parentheses when it has an OR. */
export function allOf(expressions: readonly (string | null)[]): string | null {
  const unique = [...new Set(expressions.filter((e): e is string => e !== null))];
  if (unique.length === 0) return null;
  if (unique.length === 1) return unique[0] as string;
  return unique.map((e) => (/ OR /.test(e) ? `(${e})` : e)).join(' AND ');
}
