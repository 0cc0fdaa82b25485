/*
 * figures(layers, json, baseLayers) -> Promise<object | undefined>: kiln analyze's core over the layers
 * tarscan read (each a [columns, names, links] triple, bottom first), as src/analyze/layers/tree.ts,
 * dive.ts, overlay.ts and waste.ts compute it in JavaScript: every path interned once (ids in the order
 * tree.ts gives them), dive's figures, the layers stacked as a runtime stacks them, every version
 * followed to its end, and kiln's figures of what they waste; on the thread pool, while the caller makes
 * the strings of the layers' names. In JavaScript each of these passes over a big image's entries ran
 * before V8 had optimized it, and together they took most of an analysis; the results are the same
 * numbers, in the same order.
 *
 * The object (typed arrays over memory the addon allocated; ids as tree.ts's PathIndex numbers them):
 * - parent, firstChild, nextSibling: Int32Array by path id (tree.ts's PathIndex);
 * - sources: Int32Array, three per path id: the layer and entry whose string it is (entry * 2, + 1 for
 *   the entry's target rather than its name) and its length in UTF-16 units when it is a proper prefix of
 *   that string (a directory no entry names), else -1;
 * - layerSizes: Float64Array, dive's size of each layer; dive: Float64Array [Σ min, Σ cum, wasted];
 *   references: Float64Array, (path id, count, cum) for each path in two layers or more, in first-seen order;
 * - versionLayer, versionIndex, versionNode, endLayer, endBy: Int32Array, endDeleted: Uint8Array,
 *   dead, live: Int32Array, deadBytes, liveBytes: Float64Array, layerBytes: Float64Array (overlay.ts's Overlay);
 * - wasted: a Promise of { order: Int32Array, json?: Buffer }, made on the thread pool: the places in
 *   dead of the versions that wasted bytes, in the order of the document's wasted list (most bytes
 *   first, then by path, as JavaScript compares strings), and with `json` that list's text as json.ts
 *   writes it;
 * - reclaimable, removed: Float64Array by layer, the bytes it wrote that were wasted, and that it
 *   replaced or deleted of the layers below (waste.ts's LayerWaste); largestFiles (places in live),
 *   largestDirectories (path ids) and largestDirectoryBytes, waste.ts's largest of each; needed, the
 *   (layer, entry) pairs of the files findings.ts's contentNeeded names (`baseLayers` below the image's
 *   own); findable, the places in dead of the wasted versions findings.ts's findings reads.
 * Undefined when out of memory (the caller computes in JavaScript).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"

#define ROOT 0
#define NONE (-1)
/* waste.ts's TOP and findings.ts's DUPLICATE_MIN_BYTES. */
#define TOP 20
#define DUPLICATE_MIN_BYTES 1024
enum kind { FILE_KIND, HARDLINK, SYMLINK, CHAR, BLOCK_KIND, DIRECTORY, FIFO, WHITEOUT, OPAQUE };

/* One layer as tarscan packed it, with each entry's name and link found. */
struct layer {
  uint32_t count;
  int not_ascii;
  const double *size;
  const unsigned char *kind;
  const unsigned char **name, **link;
  uint32_t *name_length, *link_length;
  /* A whiteout's target, made here (an opaque marker's is a prefix of its name). */
  unsigned char *targets;
  const unsigned char **target;
  uint32_t *target_length;
  int32_t *name_id, *path_id;
};

struct index {
  int32_t *parent, *first_child, *next_sibling, *source;
  const unsigned char **key;
  uint32_t *key_length;
  uint32_t n, room;
  /* The directory of the last path interned and its id: a tar lists a directory's entries together. */
  const unsigned char *last_dir;
  uint32_t last_dir_length;
  int32_t last_dir_id;
  /* Open addressing: id + 1 per slot, 0 empty. */
  uint32_t *slots;
  uint32_t mask;
  int failed;
};

/* A hash of a path, eight bytes a step (a byte a step took most of the interning's time). */
static uint64_t hash_bytes(const unsigned char *p, uint32_t length) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ length;
  uint32_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t word;
    memcpy(&word, p + i, 8);
    h = (h ^ word) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  memcpy(&tail, p + i, length - i);
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}

/* The id of a path, when interned; -1 otherwise. */
static int32_t find_id(struct index *index, const unsigned char *p, uint32_t length) {
  for (uint32_t slot = (uint32_t)hash_bytes(p, length) & index->mask;; slot = (slot + 1) & index->mask) {
    uint32_t at = index->slots[slot];
    if (at == 0) return -1;
    int32_t id = (int32_t)(at - 1);
    if (index->key_length[id] == length && memcmp(index->key[id], p, length) == 0) return id;
  }
}

/* Doubles the room for paths, and the table with it. */
static int grow_index(struct index *index) {
  uint32_t room = index->room * 2, slots = (index->mask + 1) * 2;
  int32_t *parent = realloc(index->parent, (size_t)room * 4 + 8), *first_child = parent ? realloc(index->first_child, (size_t)room * 4 + 8) : NULL;
  if (parent) index->parent = parent;
  if (first_child) index->first_child = first_child;
  int32_t *next_sibling = first_child ? realloc(index->next_sibling, (size_t)room * 4 + 8) : NULL;
  if (next_sibling) index->next_sibling = next_sibling;
  int32_t *source = next_sibling ? realloc(index->source, (size_t)room * 12 + 8) : NULL;
  if (source) index->source = source;
  const unsigned char **key = source ? realloc(index->key, (size_t)room * sizeof *key) : NULL;
  if (key) index->key = key;
  uint32_t *key_length = key ? realloc(index->key_length, (size_t)room * 4) : NULL;
  if (key_length) index->key_length = key_length;
  uint32_t *table = key_length ? calloc(slots, sizeof *table) : NULL;
  if (!table) return 0;
  free(index->slots);
  index->slots = table;
  index->mask = slots - 1;
  index->room = room;
  for (uint32_t id = 0; id < index->n; id++)
    for (uint32_t slot = (uint32_t)hash_bytes(index->key[id], index->key_length[id]) & index->mask;; slot = (slot + 1) & index->mask)
      if (table[slot] == 0) {
        table[slot] = id + 1;
        break;
      }
  return 1;
}

/* UTF-16 units in a UTF-8 prefix: one per sequence, two for a sequence of four bytes. */
static int32_t utf16_units(const unsigned char *p, uint32_t length) {
  int32_t units = 0;
  for (uint32_t i = 0; i < length; i++) {
    if ((p[i] & 0xC0) != 0x80) units++;
    if (p[i] >= 0xF0) units++;
  }
  return units;
}

/* tree.ts's intern: the path's id, interning it and its ancestors (parents first) when new. */
static int32_t intern(struct index *index, const struct layer *layers, const unsigned char *p, uint32_t length, int32_t layer, int32_t code, uint32_t whole) {
  int32_t known = find_id(index, p, length);
  if (known >= 0 || index->failed) return known;
  const unsigned char *slash = length ? memrchr(p, '/', length) : NULL;
  uint32_t dir = slash ? (uint32_t)(slash - p) : 0;
  int32_t parent = ROOT;
  if (slash && index->last_dir && dir == index->last_dir_length && memcmp(p, index->last_dir, dir) == 0) parent = index->last_dir_id;
  else if (slash) {
    parent = intern(index, layers, p, dir, layer, code, whole);
    index->last_dir = p;
    index->last_dir_length = dir;
    index->last_dir_id = parent;
  }
  if (index->failed) return -1;
  if (index->n == index->room && !grow_index(index)) {
    index->failed = 1;
    return -1;
  }
  int32_t id = (int32_t)index->n++;
  index->key[id] = p;
  index->key_length[id] = length;
  index->parent[id] = parent;
  index->first_child[id] = NONE;
  index->next_sibling[id] = index->first_child[parent];
  index->first_child[parent] = id;
  index->source[3 * id] = layer;
  index->source[3 * id + 1] = code;
  index->source[3 * id + 2] = length == whole ? -1 : layers[layer].not_ascii ? utf16_units(p, length) : (int32_t)length;
  for (uint32_t slot = (uint32_t)hash_bytes(p, length) & index->mask;; slot = (slot + 1) & index->mask)
    if (index->slots[slot] == 0) {
      index->slots[slot] = (uint32_t)id + 1;
      break;
    }
  return id;
}


/* A wasted version as the sort and the list need it; its path's bytes are in the job's own memory. */
struct wasted_record {
  double bytes;
  size_t path_at;
  uint32_t path_length;
  int32_t k, layer, ended_by;
  int deleted;
};

/*
 * Sorting the wasted versions and writing their list, on the thread pool while the analysis goes on:
 * most bytes first, then by path (waste.ts's kilnFigures); resolves to { order, json? }.
 */
struct sort_job {
  napi_async_work work;
  napi_deferred deferred;
  struct wasted_record *records;
  size_t count;
  unsigned char *paths;
  int json, failed;
  int32_t *order;
  struct bytes text;
};

static int by_most_bytes(const void *a, const void *b, void *context) {
  const struct wasted_record *x = a, *y = b;
  const unsigned char *paths = context;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  return utf16_compare(paths + x->path_at, x->path_length, paths + y->path_at, y->path_length);
}

static void sort_execute(napi_env env, void *data) {
  (void)env;
  struct sort_job *job = data;
  qsort_r(job->records, job->count, sizeof *job->records, by_most_bytes, job->paths);
  for (size_t w = 0; w < job->count; w++) job->order[w] = job->records[w].k;
  if (!job->json) return;
  struct bytes *out = &job->text;
  int ok = put_text(out, job->count ? "[\n" : "[]");
  for (size_t w = 0; w < job->count && ok; w++) {
    const struct wasted_record *r = &job->records[w];
    /* The path with its leading slash, which the job's memory keeps before each path. */
    ok = put_text(out, "      {\n        \"path\": ") && put_string(out, job->paths + r->path_at - 1, r->path_length + 1) && put_text(out, ",\n        \"bytes\": ") &&
         put_number(out, r->bytes) && put_text(out, ",\n        \"layer\": ") && put_number(out, r->layer) && put_text(out, ",\n        \"endedBy\": ") &&
         put_number(out, r->ended_by) && put_text(out, r->deleted ? ",\n        \"how\": \"deleted\"\n      }" : ",\n        \"how\": \"overwritten\"\n      }") &&
         put_text(out, w + 1 < job->count ? ",\n" : "\n    ]");
  }
  job->failed = !ok;
}

static void free_sort_job(struct sort_job *job) {
  free(job->records);
  free(job->paths);
  free(job->order);
  free(job->text.data);
  free(job);
}

static void sort_complete(napi_env env, napi_status status, void *data) {
  struct sort_job *job = data;
  napi_value result = NULL, order, buffer, text;
  int ok = status == napi_ok && !job->failed && napi_create_object(env, &result) == napi_ok &&
           napi_create_external_arraybuffer(env, job->order, job->count * 4, free_external, NULL, &buffer) == napi_ok;
  if (ok) job->order = NULL;
  ok = ok && napi_create_typedarray(env, napi_int32_array, job->count, buffer, 0, &order) == napi_ok && napi_set_named_property(env, result, "order", order) == napi_ok;
  if (ok && job->json) {
    ok = napi_create_external_buffer(env, job->text.length, job->text.data, free_external, NULL, &text) == napi_ok && napi_set_named_property(env, result, "json", text) == napi_ok;
    if (ok) job->text.data = NULL;
  }
  if (ok) napi_resolve_deferred(env, job->deferred, result);
  else {
    napi_value message;
    napi_create_string_utf8(env, "sys: figures: out of memory sorting the wasted paths", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &result);
    napi_reject_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  free_sort_job(job);
}

/* waste.ts's order of largest files (places in live) or directories (path ids): most bytes first, then by path. */
struct largest_order {
  const struct index *index;
  const double *bytes;
  /* The path id of an item: live[item]'s node, or the item itself (NULL). */
  const int32_t *live, *version_node;
};

static int before(const struct largest_order *order, int32_t a, int32_t b) {
  double more = order->bytes[b] - order->bytes[a];
  if (more != 0) return more < 0 ? -1 : 1;
  int32_t pa = order->live ? order->version_node[order->live[a]] : a, pb = order->live ? order->version_node[order->live[b]] : b;
  return utf16_compare(order->index->key[pa], order->index->key_length[pa], order->index->key[pb], order->index->key_length[pb]);
}

/* waste.ts's firstOf: the `n` first of the items below `count` with bytes, in order, kept sorted as they come. */
static size_t first_of(int32_t *top, size_t n, size_t count, const struct largest_order *order) {
  size_t length = 0;
  for (size_t item = 0; item < count; item++) {
    if (order->bytes[item] <= 0 || (length == n && before(order, (int32_t)item, top[n - 1]) >= 0)) continue;
    size_t at = length;
    while (at > 0 && before(order, (int32_t)item, top[at - 1]) < 0) at--;
    if (length < n) length++;
    memmove(top + at + 1, top + at, (length - 1 - at) * sizeof *top);
    top[at] = (int32_t)item;
  }
  return length;
}

static int by_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A growable stack of ids, for the walks below a path. */
struct stack {
  int32_t *items;
  size_t length, room;
};

static int push(struct stack *stack, int32_t id) {
  if (stack->length == stack->room) {
    size_t room = stack->room ? stack->room * 2 : 1024;
    int32_t *grown = realloc(stack->items, room * sizeof *grown);
    if (!grown) return 0;
    stack->items = grown;
    stack->room = room;
  }
  stack->items[stack->length++] = id;
  return 1;
}

/*
 * tree.ts's forEachPresentBelow: `id`'s descendants that `present` holds, depth first as it visits them
 * (children pushed in list order, the last pushed taken first). VISIT runs with `below` set; it may
 * clear present[below], and the walk still descends into it, as the JavaScript does.
 */
#define FOR_EACH_PRESENT_BELOW(index, present, id, stack, ok, VISIT)                                        \
  do {                                                                                                   \
    (stack)->length = 0;                                                                                 \
    for (int32_t child = (index)->first_child[id]; child != NONE; child = (index)->next_sibling[child])    \
      if (!push((stack), child)) (ok) = 0;                                                               \
    while ((stack)->length > 0) {                                                                        \
      int32_t below = (stack)->items[--(stack)->length];                                                 \
      if ((present)[below] == 0) continue;                                                               \
      VISIT;                                                                                             \
      for (int32_t child = (index)->first_child[below]; child != NONE; child = (index)->next_sibling[child]) \
        if (!push((stack), child)) (ok) = 0;                                                             \
    }                                                                                                    \
  } while (0)

/* Memory for a result array, freed with the typed array that views it. */

/* Sets `name` on `object` to a typed array of `count` items over `data`, which it takes (freed with it, or now on failure). */
static int give(napi_env env, napi_value object, const char *name, napi_typedarray_type type, void *data, size_t count, size_t item) {
  napi_value buffer, array;
  if (!data || napi_create_external_arraybuffer(env, data, count * item, free_external, NULL, &buffer) != napi_ok) {
    free(data);
    return 0;
  }
  return napi_create_typedarray(env, type, count, buffer, 0, &array) == napi_ok && napi_set_named_property(env, object, name, array) == napi_ok;
}

/* A result array of `count` items (at least one byte, so an empty one is no NULL). */
static void *array_of(size_t count, size_t item) { return malloc(count * item + 8); }

/* Reads the layers' triples; 0 when one is not what tarscan makes. */
static int read_layers(napi_env env, napi_value list, struct layer *layers, uint32_t count) {
  for (uint32_t l = 0; l < count; l++) {
    napi_value triple, part;
    void *data[3];
    size_t length[3];
    bool is_buffer;
    if (napi_get_element(env, list, l, &triple) != napi_ok) return 0;
    for (uint32_t k = 0; k < 3; k++)
      if (napi_get_element(env, triple, k, &part) != napi_ok || napi_is_buffer(env, part, &is_buffer) != napi_ok || !is_buffer ||
          napi_get_buffer_info(env, part, &data[k], &length[k]) != napi_ok)
        return 0;
    struct layer *layer = &layers[l];
    uint32_t head[2];
    if (length[0] < 16) return 0;
    memcpy(head, data[0], 8);
    if (length[0] != 16 + 41 * (size_t)head[0]) return 0;
    layer->count = head[0];
    layer->not_ascii = head[1] != 0;
    layer->size = (const double *)(const void *)((const unsigned char *)data[0] + 16);
    layer->kind = (const unsigned char *)data[0] + 16 + 40 * (size_t)head[0];
    size_t n = layer->count ? layer->count : 1;
    layer->name = calloc(n, sizeof *layer->name);
    layer->link = calloc(n, sizeof *layer->link);
    layer->target = calloc(n, sizeof *layer->target);
    layer->name_length = calloc(n, sizeof(uint32_t));
    layer->link_length = calloc(n, sizeof(uint32_t));
    layer->target_length = calloc(n, sizeof(uint32_t));
    layer->name_id = calloc(n, sizeof(int32_t));
    layer->path_id = calloc(n, sizeof(int32_t));
    if (!layer->name || !layer->link || !layer->target || !layer->name_length || !layer->link_length || !layer->target_length || !layer->name_id || !layer->path_id) return 0;
    const unsigned char *name = data[1], *names_end = name + length[1], *link = data[2], *links_end = link + length[2];
    size_t whiteout_bytes = 0;
    for (uint32_t i = 0; i < layer->count; i++) {
      const unsigned char *end = memchr(name, 0, (size_t)(names_end - name));
      if (!end) return 0;
      layer->name[i] = name;
      layer->name_length[i] = (uint32_t)(end - name);
      name = end + 1;
      unsigned char kind = layer->kind[i];
      if (kind == HARDLINK || kind == SYMLINK) {
        end = memchr(link, 0, (size_t)(links_end - link));
        if (!end) return 0;
        layer->link[i] = link;
        layer->link_length[i] = (uint32_t)(end - link);
        link = end + 1;
      }
      if (kind == WHITEOUT) whiteout_bytes += layer->name_length[i];
    }
    /* walk.ts's targetOf: an opaque marker's directory; a whiteout's path, its name without ".wh.". */
    layer->targets = malloc(whiteout_bytes + 1);
    if (!layer->targets) return 0;
    unsigned char *out = layer->targets;
    for (uint32_t i = 0; i < layer->count; i++) {
      unsigned char kind = layer->kind[i];
      if (kind != WHITEOUT && kind != OPAQUE) continue;
      const unsigned char *p = layer->name[i];
      uint32_t length = layer->name_length[i];
      const unsigned char *slash = length ? memrchr(p, '/', length) : NULL;
      uint32_t dir = slash ? (uint32_t)(slash - p) : 0, base = slash ? dir + 1 : 0;
      if (kind == OPAQUE) {
        layer->target[i] = p;
        layer->target_length[i] = dir;
      } else {
        layer->target[i] = out;
        memcpy(out, p, base);
        memcpy(out + base, p + base + 4, length - base - 4);
        layer->target_length[i] = length - 4;
        out += length - 4;
      }
    }
  }
  return 1;
}

static void free_layers(struct layer *layers, uint32_t count) {
  for (uint32_t l = 0; l < count; l++) {
    free(layers[l].name);
    free(layers[l].link);
    free(layers[l].target);
    free(layers[l].name_length);
    free(layers[l].link_length);
    free(layers[l].target_length);
    free(layers[l].name_id);
    free(layers[l].path_id);
    free(layers[l].targets);
  }
  free(layers);
}

/* A typed array figures_execute made, for figures_complete to hand over. */
struct out_array {
  const char *name;
  napi_typedarray_type type;
  void *data;
  size_t count, item;
};

/* figures_call's job: its input, and what figures_execute made of it. */
struct figures_job {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref layers_ref;
  struct layer *layers;
  uint32_t count;
  bool json;
  int32_t base_layers;
  struct out_array out[32];
  size_t outs;
  struct sort_job *sort;
  int ok, overflow;
};

static void keep(struct figures_job *figures, const char *name, napi_typedarray_type type, void *data, size_t count, size_t item) {
  /* More outputs than `out` has room for would be this file's mistake: the caller then computes in JavaScript. */
  if (figures->outs == sizeof figures->out / sizeof figures->out[0]) {
    free(data);
    figures->overflow = 1;
    return;
  }
  figures->out[figures->outs++] = (struct out_array){name, type, data, count, item};
}

/* Computes the figures on the thread pool (figures_call's job). */
static void figures_execute(napi_env env, void *data) {
  (void)env;
  struct figures_job *figures = data;
  struct layer *layers = figures->layers;
  uint32_t count = figures->count;
  bool json = figures->json;
  int32_t base_layers = figures->base_layers;
  size_t entries = 0;
  for (uint32_t l = 0; l < count; l++) entries += layers[l].count;
  /* About a path per entry (their names), a few more for the directories no entry names; grown when short. */
  size_t room = entries + entries / 8 + 64;
  struct index index = {0};
  index.room = (uint32_t)room;
  index.parent = array_of(room, 4);
  index.first_child = array_of(room, 4);
  index.next_sibling = array_of(room, 4);
  index.source = array_of(room * 3, 4);
  index.key = malloc(room * sizeof *index.key);
  index.key_length = malloc(room * sizeof *index.key_length);
  uint32_t slots = 1024;
  while (slots < room * 2 && slots < (1u << 31)) slots *= 2;
  index.slots = calloc(slots, sizeof *index.slots);
  index.mask = slots - 1;
  int ok = entries < (1u << 28) && index.parent && index.first_child && index.next_sibling && index.source && index.key && index.key_length && index.slots;
  /* Every array the results need, sized by paths (n, known once interned) or versions (at most the entries). */
  struct stack stack = {0};
  if (ok) {
    /* The root, ''. */
    static const unsigned char empty[1] = {0};
    index.n = 1;
    index.key[0] = empty;
    index.key_length[0] = 0;
    index.parent[0] = NONE;
    index.first_child[0] = NONE;
    index.next_sibling[0] = NONE;
    index.source[0] = -1, index.source[1] = -1, index.source[2] = -1;
    index.slots[(uint32_t)hash_bytes(empty, 0) & index.mask] = 1;
    /* tree.ts's indexLayers: each entry's name, then its target. */
    for (uint32_t l = 0; l < count && !index.failed; l++) {
      struct layer *layer = &layers[l];
      for (uint32_t i = 0; i < layer->count; i++) {
        int32_t name = intern(&index, layers, layer->name[i], layer->name_length[i], (int32_t)l, (int32_t)(2 * i), layer->name_length[i]);
        layer->name_id[i] = name;
        unsigned char kind = layer->kind[i];
        layer->path_id[i] = kind == WHITEOUT || kind == OPAQUE ? intern(&index, layers, layer->target[i], layer->target_length[i], (int32_t)l, (int32_t)(2 * i + 1), layer->target_length[i]) : name;
      }
    }
    ok = !index.failed;
  }
  const uint32_t n = index.n;
  double *layer_sizes = array_of(count, 8), *dive = array_of(3, 8), *references = array_of(3 * (size_t)n, 8);
  size_t reference_count = 0;
  int32_t *version_layer = array_of(entries, 4), *version_index = array_of(entries, 4), *version_node = array_of(entries, 4);
  int32_t *end_layer = array_of(entries, 4), *end_by = array_of(entries, 4), *dead = array_of(entries, 4), *live = array_of(entries, 4);
  uint8_t *end_deleted = array_of(entries, 1);
  double *dead_bytes = array_of(entries, 8), *live_bytes = array_of(entries, 8), *layer_bytes = array_of(count, 8);
  /* Scratch. */
  double *cum = calloc(n, 8), *min = calloc(n, 8), *stacked_size = calloc(n, 8);
  int32_t *seen_count = calloc(n, 4), *seen = malloc(n * 4 + 4), *node_layer = malloc(n * 4 + 4), *node_entry = malloc(n * 4 + 4), *inner_layer = malloc(n * 4 + 4);
  int32_t *nodes = malloc(entries * 4 + 4), *version_at = malloc(n * 4 + 4), *numbers = malloc(entries * 4 + 4), *layer_start = malloc(count * 4 + 4);
  int32_t *by_name = malloc(n * 4 + 4), *by_name_layer = malloc(n * 4 + 4), *link_target = malloc(entries * 4 + 4);
  int32_t *first_member = malloc(entries * 4 + 4), *last_member = malloc(entries * 4 + 4), *next_member = malloc(entries * 4 + 4);
  uint8_t *present = calloc(n + 1, 1), *dir = calloc(n + 1, 1), *branched = calloc(n + 1, 1), *linked = calloc(entries + 1, 1);
  ok = ok && layer_sizes && dive && references && version_layer && version_index && version_node && end_layer && end_by && dead && live && end_deleted &&
       dead_bytes && live_bytes && layer_bytes && cum && min && stacked_size && seen_count && seen && node_layer && node_entry && inner_layer && nodes &&
       version_at && numbers && layer_start && by_name && by_name_layer && link_target && first_member && last_member && next_member && present && dir &&
       branched && linked;
  size_t versions = 0, dead_count = 0, live_count = 0;
  if (ok) {
    /* dive.ts's diveFigures, with its StackedTree in present/dir/branched/stacked_size. */
    uint32_t seen_total = 0;
    for (uint32_t id = 0; id < n; id++) node_layer[id] = NONE, inner_layer[id] = NONE;
    present[ROOT] = 1;
    dir[ROOT] = 1;
    double sum_min = 0, sum_cum = 0, wasted = 0;
    for (uint32_t l = 0; l < count; l++) {
      struct layer *layer = &layers[l];
      double layer_size = 0;
      uint32_t node_count = 0;
      for (uint32_t i = 0; i < layer->count; i++) {
        layer_size += layer->size[i];
        if (layer->kind[i] != OPAQUE) {
          int32_t id = layer->name_id[i];
          if (node_layer[id] != (int32_t)l) nodes[node_count++] = id;
          node_layer[id] = (int32_t)l;
          node_entry[id] = (int32_t)i;
        } else if (layer->path_id[i] != ROOT) {
          int32_t id = layer->path_id[i];
          if (node_layer[id] == (int32_t)l) continue;
          nodes[node_count++] = id;
          node_layer[id] = (int32_t)l;
          node_entry[id] = -1;
        }
      }
      layer_sizes[l] = layer_size;
      for (uint32_t k = 0; k < node_count; k++)
        for (int32_t p = index.parent[nodes[k]]; p != ROOT && inner_layer[p] != (int32_t)l; p = index.parent[p]) inner_layer[p] = (int32_t)l;
      for (uint32_t k = 0; k < node_count; k++) {
        int32_t id = nodes[k];
        if (inner_layer[id] == (int32_t)l) continue;
        int32_t at = node_entry[id];
        int whiteout = at != -1 && layer->kind[at] == WHITEOUT;
        int32_t key = whiteout ? layer->path_id[at] : id;
        double size = 0;
        if (whiteout) {
          /* StackedTree.sizeUnder, when there is a stacked tree (more than one layer). */
          if (count > 1 && key != ROOT && present[key] && (dir[key] || branched[key])) {
            size = stacked_size[key];
            FOR_EACH_PRESENT_BELOW(&index, present, key, &stack, ok, size += stacked_size[below]);
          }
        } else if (at != -1) size = layer->size[at];
        if (seen_count[key] == 0) {
          seen[seen_total++] = key;
          cum[key] = size;
          min[key] = size;
        } else {
          cum[key] += size;
          if (size < min[key]) min[key] = size;
        }
        seen_count[key]++;
      }
      /* StackedTree.apply, for the layers below the top. */
      if (count > 1 && l < count - 1) {
        for (uint32_t i = 0; i < layer->count; i++) {
          int32_t id = layer->path_id[i];
          if (layer->kind[i] != WHITEOUT || id == ROOT || present[id] == 0) continue;
          present[id] = 0;
          FOR_EACH_PRESENT_BELOW(&index, present, id, &stack, ok, present[below] = 0);
        }
        for (uint32_t i = 0; i < layer->count; i++) {
          unsigned char kind = layer->kind[i];
          if (kind == WHITEOUT || kind == OPAQUE) continue;
          int32_t id = layer->path_id[i];
          if (id == ROOT) continue;
          /* The ancestors that are not there, or never had a child, from the top down. */
          stack.length = 0;
          for (int32_t p = index.parent[id]; p != NONE && (present[p] == 0 || branched[p] == 0); p = index.parent[p])
            if (!push(&stack, p)) ok = 0;
          while (stack.length > 0) {
            int32_t p = stack.items[--stack.length];
            if (present[p] == 0) present[p] = 1, dir[p] = 1, branched[p] = 0, stacked_size[p] = 0;
            branched[p] = 1;
          }
          if (present[id] == 0) present[id] = 1, dir[id] = 1, branched[id] = 0, stacked_size[id] = 0;
          stacked_size[id] = layer->size[i];
          dir[id] = kind == DIRECTORY;
        }
      }
    }
    for (uint32_t k = 0; k < seen_total; k++) {
      int32_t id = seen[k];
      sum_min += min[id];
      sum_cum += cum[id];
      if (seen_count[id] >= 2) {
        wasted += cum[id];
        references[3 * reference_count] = id;
        references[3 * reference_count + 1] = seen_count[id];
        references[3 * reference_count + 2] = cum[id];
        reference_count++;
      }
    }
    dive[0] = sum_min, dive[1] = sum_cum, dive[2] = wasted;

    /* overlay.ts's stackLayers, over a tree of its own. */
    memset(present, 0, n);
    present[ROOT] = 1;
    for (uint32_t id = 0; id < n; id++) version_at[id] = NONE;
    for (size_t v = 0; v < entries; v++) end_layer[v] = NONE, end_by[v] = NONE, end_deleted[v] = 0;
#define END(version, layer_, by) (end_layer[version] = (layer_), end_deleted[version] = (by) == NONE, end_by[version] = (by))
#define END_BELOW(id, layer_, by)                                                                           \
  FOR_EACH_PRESENT_BELOW(&index, present, id, &stack, ok, {                                                \
    int32_t v = version_at[below];                                                                         \
    if (v != NONE) END(v, layer_, by);                                                                     \
    present[below] = 0;                                                                                    \
    version_at[below] = NONE;                                                                              \
  })
    size_t start = 0;
    for (uint32_t l = 0; l < count; l++) {
      struct layer *layer = &layers[l];
      layer_start[l] = (int32_t)start;
      for (uint32_t i = 0; i < layer->count; i++) {
        unsigned char kind = layer->kind[i];
        int32_t id = layer->path_id[i];
        if (kind == WHITEOUT) {
          if (id == ROOT || present[id] == 0) continue;
          END_BELOW(id, (int32_t)l, NONE);
          int32_t v = version_at[id];
          if (v != NONE) END(v, (int32_t)l, NONE);
          present[id] = 0;
          version_at[id] = NONE;
        } else if (kind == OPAQUE) {
          if (present[id] == 0) continue;
          END_BELOW(id, (int32_t)l, NONE);
        }
      }
      for (uint32_t i = 0; i < layer->count; i++) {
        unsigned char kind = layer->kind[i];
        numbers[start + i] = NONE;
        if (kind == WHITEOUT || kind == OPAQUE) continue;
        int32_t id = layer->path_id[i];
        int32_t number = (int32_t)versions++;
        version_layer[number] = (int32_t)l;
        version_index[number] = (int32_t)i;
        version_node[number] = id;
        numbers[start + i] = number;
        for (int32_t p = id; p != NONE && present[p] == 0; p = index.parent[p]) present[p] = 1;
        int32_t old = version_at[id];
        int is_dir = kind == DIRECTORY;
        if (old != NONE && !(is_dir && layers[version_layer[old]].kind[version_index[old]] == DIRECTORY)) END(old, (int32_t)l, number);
        if (!is_dir && index.first_child[id] != NONE) END_BELOW(id, (int32_t)l, number);
        version_at[id] = number;
      }
      start += layer->count;
    }
    /* Hardlinks grouped with the file they name (overlay.ts's linkTargets), their members in order. */
    for (size_t v = 0; v < versions; v++) first_member[v] = NONE, last_member[v] = NONE, next_member[v] = NONE;
    for (uint32_t id = 0; id < n; id++) by_name_layer[id] = NONE;
    for (uint32_t l = 0; l < count; l++) {
      struct layer *layer = &layers[l];
      int has_link = 0;
      for (uint32_t i = 0; i < layer->count && !has_link; i++) has_link = layer->kind[i] == HARDLINK;
      if (!has_link) continue;
      int32_t *target = link_target + layer_start[l];
      for (uint32_t i = 0; i < layer->count; i++) {
        target[i] = NONE;
        if (layer->kind[i] == HARDLINK) {
          int32_t link_id = find_id(&index, layer->link[i], layer->link_length[i]);
          if (link_id >= 0 && by_name_layer[link_id] == (int32_t)l) {
            int32_t to = by_name[link_id];
            target[i] = target[to] != NONE ? target[to] : to;
          }
        }
        by_name[layer->name_id[i]] = (int32_t)i;
        by_name_layer[layer->name_id[i]] = (int32_t)l;
      }
      int32_t *layer_numbers = numbers + layer_start[l];
      for (uint32_t i = 0; i < layer->count; i++) {
        if (target[i] == NONE) continue;
        int32_t file = layer_numbers[target[i]], member = layer_numbers[i];
        if (file == NONE || member == NONE) continue;
        if (last_member[file] == NONE) first_member[file] = member;
        else next_member[last_member[file]] = member;
        last_member[file] = member;
        linked[member] = 1;
      }
    }
    for (uint32_t l = 0; l < count; l++) layer_bytes[l] = 0;
#define SETTLE(number, bytes)                                                                              \
  do {                                                                                                     \
    if (end_layer[number] != NONE) dead[dead_count] = (number), dead_bytes[dead_count++] = (bytes);         \
    else live[live_count] = (number), live_bytes[live_count++] = (bytes);                                  \
  } while (0)
    for (size_t number = 0; number < versions; number++) {
      struct layer *layer = &layers[version_layer[number]];
      int32_t i = version_index[number];
      unsigned char kind = layer->kind[i];
      if (kind == DIRECTORY || linked[number]) continue;
      double bytes = kind == FILE_KIND ? layer->size[i] : kind == SYMLINK ? (double)layer->link_length[i] : 0;
      layer_bytes[version_layer[number]] += bytes;
      if (first_member[number] == NONE) {
        SETTLE((int32_t)number, bytes);
        continue;
      }
      int32_t carrier = (int32_t)number;
      if (end_layer[number] != NONE)
        for (int32_t m = first_member[number]; m != NONE; m = next_member[m])
          if (end_layer[m] == NONE) {
            carrier = m;
            break;
          }
      SETTLE((int32_t)number, carrier == (int32_t)number ? bytes : 0);
      for (int32_t m = first_member[number]; m != NONE; m = next_member[m]) SETTLE(m, m == carrier ? bytes : 0);
    }
  }
  /*
   * The wasted versions (places in dead; those of no bytes left out) summed by layer here, and sorted,
   * with `json` written as the document's `kiln.wasted` list (json.ts's wastedItem), by a job on the
   * thread pool that has its own copy of what it needs.
   */
  double *reclaimable = array_of(count, 8), *removed = array_of(count, 8);
  struct sort_job *job = calloc(1, sizeof *job);
  ok = ok && reclaimable && removed && job;
  if (ok) {
    size_t wasted_count = 0, path_bytes = 0;
    for (uint32_t l = 0; l < count; l++) reclaimable[l] = 0, removed[l] = 0;
    for (size_t k = 0; k < dead_count; k++)
      if (dead_bytes[k] != 0) {
        wasted_count++;
        path_bytes += index.key_length[version_node[dead[k]]] + 1;
        reclaimable[version_layer[dead[k]]] += dead_bytes[k];
        removed[end_layer[dead[k]]] += dead_bytes[k];
      }
    job->json = json;
    job->records = array_of(wasted_count, sizeof *job->records);
    job->order = array_of(wasted_count, 4);
    job->paths = malloc(path_bytes + 1);
    ok = job->records && job->order && job->paths;
    size_t at = 0;
    for (size_t k = 0; k < dead_count && ok; k++) {
      if (dead_bytes[k] == 0) continue;
      int32_t version = dead[k], node = version_node[version];
      struct wasted_record *r = &job->records[job->count++];
      job->paths[at++] = '/';
      memcpy(job->paths + at, index.key[node], index.key_length[node]);
      *r = (struct wasted_record){dead_bytes[k], at, index.key_length[node], (int32_t)k, version_layer[version], end_layer[version], end_deleted[version]};
      at += index.key_length[node];
    }
  }
  /* waste.ts's largest files and directories (TOP of each), with the bytes of each directory. */
  int32_t *largest_files = array_of(TOP, 4), *largest_directories = array_of(TOP, 4);
  double *directory_bytes = calloc(n + 1, 8), *largest_directory_bytes = array_of(TOP, 8);
  size_t file_count = 0, directory_count = 0;
  ok = ok && largest_files && largest_directories && directory_bytes && largest_directory_bytes;
  if (ok) {
    struct largest_order files = {&index, live_bytes, live, version_node};
    file_count = first_of(largest_files, TOP, live_count, &files);
    for (size_t k = 0; k < live_count; k++)
      if (live_bytes[k] != 0)
        for (int32_t p = index.parent[version_node[live[k]]]; p > ROOT; p = index.parent[p]) directory_bytes[p] += live_bytes[k];
    struct largest_order directories = {&index, directory_bytes, NULL, NULL};
    directory_count = first_of(largest_directories, TOP, n, &directories);
    for (size_t d = 0; d < directory_count; d++) largest_directory_bytes[d] = directory_bytes[largest_directories[d]];
  }
  /*
   * findings.ts's contentNeeded: the files whose contents the findings compare, as (layer, entry) pairs
   * (perhaps twice): a file written again at its size, in the image's own layers or over them, and the
   * image's own live files of at least DUPLICATE_MIN_BYTES whose size another live file has.
   */
  struct bytes needed = {0}, findable = {0};
  double *own_sizes = array_of(live_count, 8), *by_size = array_of(2 * live_count, 8);
  ok = ok && own_sizes && by_size;
  if (ok) {
#define KIND_OF(v) (layers[version_layer[v]].kind[version_index[v]])
#define SIZE_OF(v) (layers[version_layer[v]].size[version_index[v]])
#define NEED(v) (put(&needed, &version_layer[v], 4) && put(&needed, &version_index[v], 4))
    for (size_t k = 0; k < dead_count && ok; k++) {
      int32_t version = dead[k], by = end_by[version];
      int rewrote = end_deleted[version] == 0 && by != NONE && version_node[by] == version_node[version] && KIND_OF(version) == FILE_KIND && KIND_OF(by) == FILE_KIND &&
                    SIZE_OF(by) == SIZE_OF(version);
      if (rewrote && SIZE_OF(version) > 0 && (version_layer[version] >= base_layers || version_layer[by] >= base_layers)) ok = NEED(version) && NEED(by);
      /* findings.ts's findings reads only these wasted versions: the image's own, and the base's it rewrote at their size. */
      int32_t place = (int32_t)k;
      if (ok && dead_bytes[k] != 0 && (version_layer[version] >= base_layers || (end_layer[version] >= base_layers && rewrote))) ok = put(&findable, &place, 4);
    }
    size_t sizes = 0;
    for (size_t k = live_count; k-- > 0;) {
      int32_t version = live[k];
      if (version_layer[version] < base_layers) break;
      if (KIND_OF(version) == FILE_KIND && live_bytes[k] >= DUPLICATE_MIN_BYTES) own_sizes[sizes++] = live_bytes[k];
    }
    if (sizes > 0) {
      qsort(own_sizes, sizes, sizeof *own_sizes, by_double);
      /* (bytes, version) of the live files of such a size, grouped by bytes: a group of two or more is needed. */
      size_t pairs = 0;
      for (size_t k = 0; k < live_count; k++)
        if (KIND_OF(live[k]) == FILE_KIND && bsearch(&live_bytes[k], own_sizes, sizes, sizeof *own_sizes, by_double)) {
          by_size[2 * pairs] = live_bytes[k];
          by_size[2 * pairs + 1] = live[k];
          pairs++;
        }
      qsort(by_size, pairs, 2 * sizeof *by_size, by_double);
      for (size_t start = 0, end; start < pairs && ok; start = end) {
        for (end = start + 1; end < pairs && by_size[2 * end] == by_size[2 * start]; end++) continue;
        for (size_t p = start; end - start > 1 && p < end && ok; p++) ok = NEED((int32_t)by_size[2 * p + 1]);
      }
    }
#undef KIND_OF
#undef SIZE_OF
#undef NEED
  }
  if (ok) {
    keep(figures, "parent", napi_int32_array, index.parent, n, 4);
    keep(figures, "firstChild", napi_int32_array, index.first_child, n, 4);
    keep(figures, "nextSibling", napi_int32_array, index.next_sibling, n, 4);
    keep(figures, "sources", napi_int32_array, index.source, 3 * (size_t)n, 4);
    keep(figures, "layerSizes", napi_float64_array, layer_sizes, count, 8);
    keep(figures, "dive", napi_float64_array, dive, 3, 8);
    keep(figures, "references", napi_float64_array, references, 3 * reference_count, 8);
    keep(figures, "versionLayer", napi_int32_array, version_layer, versions, 4);
    keep(figures, "versionIndex", napi_int32_array, version_index, versions, 4);
    keep(figures, "versionNode", napi_int32_array, version_node, versions, 4);
    keep(figures, "endLayer", napi_int32_array, end_layer, versions, 4);
    keep(figures, "endDeleted", napi_uint8_array, end_deleted, versions, 1);
    keep(figures, "endBy", napi_int32_array, end_by, versions, 4);
    keep(figures, "dead", napi_int32_array, dead, dead_count, 4);
    keep(figures, "deadBytes", napi_float64_array, dead_bytes, dead_count, 8);
    keep(figures, "live", napi_int32_array, live, live_count, 4);
    keep(figures, "liveBytes", napi_float64_array, live_bytes, live_count, 8);
    keep(figures, "layerBytes", napi_float64_array, layer_bytes, count, 8);
    keep(figures, "reclaimable", napi_float64_array, reclaimable, count, 8);
    keep(figures, "removed", napi_float64_array, removed, count, 8);
    keep(figures, "largestFiles", napi_int32_array, largest_files, file_count, 4);
    keep(figures, "largestDirectories", napi_int32_array, largest_directories, directory_count, 4);
    keep(figures, "largestDirectoryBytes", napi_float64_array, largest_directory_bytes, directory_count, 8);
    keep(figures, "needed", napi_int32_array, needed.data ? needed.data : array_of(0, 4), needed.length / 4, 4);
    keep(figures, "findable", napi_int32_array, findable.data ? findable.data : array_of(0, 4), findable.length / 4, 4);
    needed.data = findable.data = NULL;
    figures->sort = job;
    job = NULL;
    /* keep took every array. */
    index.parent = index.first_child = index.next_sibling = index.source = NULL;
    layer_sizes = dive = references = dead_bytes = live_bytes = layer_bytes = NULL;
    version_layer = version_index = version_node = end_layer = end_by = dead = live = NULL;
    reclaimable = removed = largest_directory_bytes = NULL;
    largest_files = largest_directories = NULL;
    end_deleted = NULL;
  }
  figures->ok = ok;
  free(index.parent), free(index.first_child), free(index.next_sibling), free(index.source), free(index.key), free(index.key_length), free(index.slots);
  free(layer_sizes), free(dive), free(references), free(version_layer), free(version_index), free(version_node), free(end_layer), free(end_by);
  if (job) free_sort_job(job);
  free(reclaimable), free(removed);
  free(largest_files), free(largest_directories), free(directory_bytes), free(largest_directory_bytes), free(needed.data), free(findable.data), free(own_sizes), free(by_size);
  free(dead), free(live), free(end_deleted), free(dead_bytes), free(live_bytes), free(layer_bytes);
  free(cum), free(min), free(stacked_size), free(seen_count), free(seen), free(node_layer), free(node_entry), free(inner_layer), free(nodes);
  free(version_at), free(numbers), free(layer_start), free(by_name), free(by_name_layer), free(link_target), free(first_member), free(last_member);
  free(next_member), free(present), free(dir), free(branched), free(linked), free(stack.items);
  free_layers(layers, count);
  figures->layers = NULL;
}

/* Hands the figures to JavaScript, and queues the wasted versions' sort (figures_call's job done). */
static void figures_complete(napi_env env, napi_status status, void *data) {
  struct figures_job *figures = data;
  napi_value result = NULL;
  int ok = status == napi_ok && figures->ok && !figures->overflow && napi_create_object(env, &result) == napi_ok;
  /* give takes each array (a typed array's, or freed); those after a failure are freed here. */
  for (size_t k = 0; k < figures->outs; k++) {
    struct out_array *out = &figures->out[k];
    if (ok) ok = give(env, result, out->name, out->type, out->data, out->count, out->item);
    else free(out->data);
  }
  struct sort_job *job = figures->sort;
  napi_value promise, name;
  ok = ok && job && napi_create_promise(env, &job->deferred, &promise) == napi_ok && napi_set_named_property(env, result, "wasted", promise) == napi_ok &&
       napi_create_string_utf8(env, "kiln:figures", NAPI_AUTO_LENGTH, &name) == napi_ok &&
       napi_create_async_work(env, NULL, name, sort_execute, sort_complete, job, &job->work) == napi_ok && napi_queue_async_work(env, job->work) == napi_ok;
  /* Queued, the sort job frees itself when done. */
  if (ok) job = NULL;
  if (job) free_sort_job(job);
  if (!ok) napi_get_undefined(env, &result);
  napi_resolve_deferred(env, figures->deferred, result);
  napi_delete_reference(env, figures->layers_ref);
  napi_delete_async_work(env, figures->work);
  if (figures->layers) free_layers(figures->layers, figures->count);
  free(figures);
}

napi_value figures_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t base_layers = 0;
  uint32_t count = 0;
  bool is_array = false, json = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "sys: figures(layers): tarscan's [columns, names, links] of each layer");
    return NULL;
  }
  if (argc > 1) napi_get_value_bool(env, argv[1], &json);
  if (argc > 2) napi_get_value_int32(env, argv[2], &base_layers);
  struct layer *layers = calloc(count ? count : 1, sizeof *layers);
  struct figures_job *figures = calloc(1, sizeof *figures);
  if (!layers || !figures) {
    free(layers);
    free(figures);
    napi_throw_error(env, "ENOMEM", "sys: figures: out of memory");
    return NULL;
  }
  if (!read_layers(env, argv[0], layers, count)) {
    free_layers(layers, count);
    free(figures);
    napi_throw_type_error(env, NULL, "sys: figures(layers): tarscan's [columns, names, links] of each layer");
    return NULL;
  }
  /* The layers' Buffers stay alive (the list is referenced) while the job reads them. */
  napi_value promise, name;
  figures->layers = layers;
  figures->count = count;
  figures->json = json;
  figures->base_layers = base_layers;
  napi_create_reference(env, argv[0], 1, &figures->layers_ref);
  napi_create_promise(env, &figures->deferred, &promise);
  napi_create_string_utf8(env, "kiln:figures", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, figures_execute, figures_complete, figures, &figures->work);
  napi_queue_async_work(env, figures->work);
  return promise;
}

