/*
 * Growable bytes, and text put into them as JSON.stringify writes it: what tarscan.c and figures.c
 * write kiln analyze's JSON with. Static, so each file has its own copy.
 */
#ifndef KILN_TEXT_H
#define KILN_TEXT_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#endif
