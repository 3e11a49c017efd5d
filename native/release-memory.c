// Gives memory the relay no longer uses back to the kernel.
//
// Pages of idle read buffers (releasePages). Every relayed socket reads into
// a 64 KiB buffer of its own (src/net/connection.ts), and the pages a read touched stay resident
// for as long as the connection lives, idle or not: a keep-alive pool at rest after bulk kept up
// to 64 KiB per socket (1,000 connections after 1 MiB each: 177 MiB, against 96 after small
// requests). When nothing refers to a buffer's contents any
// more (between reads, or parked in the pool of free buffers), madvise(MADV_DONTNEED) on the
// whole pages inside it drops them from the process; the buffer stays valid and its next read
// faults in zeroed pages, only as many as that read fills. The bytes at either end that share a
// page with other allocations are left alone.
//
// Freed heap memory (trimHeap). Read buffers replaced while a write still held the old one, and
// the bodies of a burst, are freed to glibc's malloc when V8 collects them, which keeps the pages
// for reuse: after a burst of bulk transfers the sidecar stayed at its peak. malloc_trim(0)
// returns the free pages inside every arena, not only at the top of the heap (glibc >= 2.8).
#include <malloc.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static uintptr_t page_size;

// releasePages(view: ArrayBufferView) -> bytes given back (0 when the view spans no whole page,
// or when madvise refused: the buffer then simply stays resident).
static napi_value ReleasePages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_view = false;
  if (argc >= 1) napi_is_typedarray(env, argv[0], &is_view);
  if (!is_view) {
    napi_throw_type_error(env, NULL, "releasePages(view: Uint8Array)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value arraybuffer;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "releasePages(view: Uint8Array)");
    return NULL;
  }
  uintptr_t start = ((uintptr_t)data + page_size - 1) & ~(page_size - 1);
  uintptr_t end = ((uintptr_t)data + length) & ~(page_size - 1);
  double released = 0;
  if (data != NULL && end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0) released = (double)(end - start);
  napi_value out;
  napi_create_double(env, released, &out);
  return out;
}

// trimHeap() -> whether malloc_trim gave any memory back.
static napi_value TrimHeap(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_get_boolean(env, malloc_trim(0) == 1, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
  napi_value fn;
  napi_create_function(env, "releasePages", NAPI_AUTO_LENGTH, ReleasePages, NULL, &fn);
  napi_set_named_property(env, exports, "releasePages", fn);
  napi_create_function(env, "trimHeap", NAPI_AUTO_LENGTH, TrimHeap, NULL, &fn);
  napi_set_named_property(env, exports, "trimHeap", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
