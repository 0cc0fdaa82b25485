/*
 * UTF-8 checked and ordered as JavaScript orders strings (sys.c's walk, tarscan.c, figures.c); growable
 * bytes with text put into them as JSON.stringify writes it (kiln analyze's JSON); and the finalizer of
 * the Buffers handed to JavaScript over malloc'd memory. Static, so each file has its own copy.
 */
#ifndef KILN_TEXT_H
#define KILN_TEXT_H
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The finalizer of a Buffer or ArrayBuffer made over memory from malloc: frees it. */
static inline void free_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

struct bytes {
  unsigned char *data;
  size_t length, room;
};

static inline int put(struct bytes *to, const void *data, size_t length) {
  if (to->length + length > to->room) {
    size_t room = to->room ? to->room * 2 : 1 << 16;
    while (room < to->length + length) room *= 2;
    unsigned char *grown = realloc(to->data, room);
    if (!grown) return 0;
    to->data = grown;
    to->room = room;
  }
  memcpy(to->data + to->length, data, length);
  to->length += length;
  return 1;
}

static inline int put_text(struct bytes *out, const char *text) { return put(out, text, strlen(text)); }

/* An integer (a double holding one, as JavaScript's numbers do), in decimal. */
static inline int put_number(struct bytes *out, double value) {
  char digits[32];
  int length = 0;
  uint64_t n = (uint64_t)(value < 0 ? -value : value);
  do digits[sizeof digits - 1 - length++] = (char)('0' + n % 10), n /= 10;
  while (n);
  if (value < 0) digits[sizeof digits - 1 - length++] = '-';
  return put(out, digits + sizeof digits - length, (size_t)length);
}

/* A UTF-8 string as JSON.stringify writes it: the escapes below 0x20, quote and backslash; the rest as it is. */
static inline int put_string(struct bytes *out, const unsigned char *text, size_t length) {
  static const char hex[] = "0123456789abcdef";
  int ok = put(out, "\"", 1);
  const unsigned char *run = text, *end = text + length;
  for (; text < end; text++) {
    unsigned char c = *text;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    ok = ok && put(out, run, (size_t)(text - run));
    char escape[6] = {'\\', 0};
    size_t size = 2;
    if (c == '"' || c == '\\') escape[1] = (char)c;
    else if (c == '\b') escape[1] = 'b';
    else if (c == '\t') escape[1] = 't';
    else if (c == '\n') escape[1] = 'n';
    else if (c == '\f') escape[1] = 'f';
    else if (c == '\r') escape[1] = 'r';
    else escape[1] = 'u', escape[2] = '0', escape[3] = '0', escape[4] = hex[c >> 4], escape[5] = hex[c & 15], size = 6;
    ok = ok && put(out, escape, size);
    run = text + 1;
  }
  return ok && put(out, run, (size_t)(text - run)) && put(out, "\"", 1);
}

/*
 * 1 when well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF); sets *ascii to
 * whether every byte is below 0x80.
 */
static inline int utf8_ok(const unsigned char *text, size_t length, int *ascii) {
  *ascii = 1;
  for (size_t i = 0; i < length;) {
    unsigned char c = text[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    *ascii = 0;
    int more;
    unsigned int point, least;
    if (c >= 0xC2 && c <= 0xDF) more = 1, point = c & 0x1F, least = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) more = 2, point = c & 0x0F, least = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) more = 3, point = c & 0x07, least = 0x10000;
    else return 0;
    if (i + (size_t)more >= length) return 0;
    for (int k = 1; k <= more; k++) {
      if ((text[i + k] & 0xC0) != 0x80) return 0;
      point = (point << 6) | (text[i + k] & 0x3F);
    }
    if (point < least || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) return 0;
    i += (size_t)more + 1;
  }
  return 1;
}

/*
 * Two UTF-8 strings in the order of their UTF-16 code units (JavaScript's `<` on strings): as bytes,
 * but a code point past U+FFFF (a surrogate pair, lead byte F0-F4) before one of U+E000-U+FFFF (EE-EF).
 */
static inline int utf16_compare(const unsigned char *x, uint32_t x_length, const unsigned char *y, uint32_t y_length) {
  uint32_t i = 0, least = x_length < y_length ? x_length : y_length;
  while (i < least && x[i] == y[i]) i++;
  if (i == least) return x_length < y_length ? -1 : x_length > y_length;
  if (x[i] >= 0xF0 && (y[i] == 0xEE || y[i] == 0xEF)) return -1;
  if (y[i] >= 0xF0 && (x[i] == 0xEE || x[i] == 0xEF)) return 1;
  return x[i] < y[i] ? -1 : 1;
}

#endif
