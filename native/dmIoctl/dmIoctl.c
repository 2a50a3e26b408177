// thinlv's device-mapper ioctl addon (Node-API, C): it opens /dev/mapper/control and runs
// one ioctl on a buffer the caller built. Nothing else: struct dm_ioctl and its payloads
// are encoded and decoded in TypeScript (src/dm/dmIoctlCodec.ts), where they are unit
// tested on machines without device-mapper. The layout constants exported here are the
// kernel header's, so the TypeScript side can check its own against them when it loads.
//
//   openControl(path)            -> fd                     (sync; throws an Error with .errno)
//   ioctl(fd, request, buffer)   -> Promise<errno, 0 = ok> (on the libuv thread pool: a
//                                                           suspend waits for in-flight I/O,
//                                                           which must not block the event loop)
//   ioctlSync(fd, request, buffer) -> errno                (benchmarks and the startup probe)
//   layout                       -> sizes and request numbers from <linux/dm-ioctl.h>
//
// Memory safety: the kernel reads and writes data_size bytes of the buffer, so both calls
// refuse a buffer shorter than the data_size written in its header (EINVAL, no ioctl).

#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "dmIoctl: Node-API call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer_ref;
  int fd;
  unsigned long request;
  void *data;
  int result_errno;
} ioctl_call;

static int header_fits(void *data, size_t length) {
  if (length < sizeof(struct dm_ioctl)) return 0;
  uint32_t data_size;
  memcpy(&data_size, (char *)data + offsetof(struct dm_ioctl, data_size), sizeof data_size);
  return data_size >= sizeof(struct dm_ioctl) && data_size <= length;
}

static int run_ioctl(int fd, unsigned long request, void *data) {
  // EINTR: the ioctl did not run (a signal arrived before it started); run it again.
  for (;;) {
    if (ioctl(fd, request, data) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

static napi_value throw_errno(napi_env env, const char *what, int error) {
  napi_value message, code, object;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(error));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &object);
  napi_create_int32(env, error, &code);
  napi_set_named_property(env, object, "errno", code);
  napi_throw(env, object);
  return NULL;
}

static napi_value open_control(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  size_t path_length;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_length) != napi_ok || path_length == 0 ||
      path_length >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "openControl(path): path must be a non-empty string");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, path, errno);
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

/** Reads (fd, request, buffer) and checks them; returns 0 and throws when they are wrong. */
static int read_call(napi_env env, napi_callback_info info, int *fd, unsigned long *request, void **data, napi_value *buffer) {
  size_t argc = 3;
  napi_value argv[3];
  size_t length = 0;
  double request_number = 0;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || napi_get_value_double(env, argv[1], &request_number) != napi_ok ||
      napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[2], data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "ioctl(fd, request, buffer): expected an fd, a request number and a Buffer");
    return 0;
  }
  if (request_number < 0 || request_number > 4294967295.0) {
    napi_throw_range_error(env, NULL, "ioctl: request must be a 32-bit unsigned number");
    return 0;
  }
  if (!header_fits(*data, length)) {
    napi_throw_range_error(env, NULL, "ioctl: the buffer is shorter than struct dm_ioctl or than the data_size in its header");
    return 0;
  }
  *request = (unsigned long)request_number;
  *buffer = argv[2];
  return 1;
}

static void execute_ioctl(napi_env env, void *hint) {
  (void)env;
  ioctl_call *call = hint;
  call->result_errno = run_ioctl(call->fd, call->request, call->data);
}

static void complete_ioctl(napi_env env, napi_status status, void *hint) {
  ioctl_call *call = hint;
  napi_value result;
  if (status == napi_ok && napi_create_int32(env, call->result_errno, &result) == napi_ok) {
    napi_resolve_deferred(env, call->deferred, result);
  } else {
    napi_value message, error;
    napi_create_string_utf8(env, "dmIoctl: the ioctl work item was cancelled or failed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, call->deferred, error);
  }
  napi_delete_reference(env, call->buffer_ref);
  napi_delete_async_work(env, call->work);
  free(call);
}

static napi_value ioctl_async(napi_env env, napi_callback_info info) {
  int fd;
  unsigned long request;
  void *data;
  napi_value buffer, promise, name;
  if (!read_call(env, info, &fd, &request, &data, &buffer)) return NULL;
  ioctl_call *call = calloc(1, sizeof *call);
  if (call == NULL) return throw_errno(env, "dmIoctl", ENOMEM);
  call->fd = fd;
  call->request = request;
  call->data = data;
  // The buffer stays alive (and in place: Node Buffers never move) until the work is done.
  CHECK(napi_create_reference(env, buffer, 1, &call->buffer_ref));
  CHECK(napi_create_promise(env, &call->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "thinlv.dmIoctl", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, execute_ioctl, complete_ioctl, call, &call->work));
  CHECK(napi_queue_async_work(env, call->work));
  return promise;
}

static napi_value ioctl_sync(napi_env env, napi_callback_info info) {
  int fd;
  unsigned long request;
  void *data;
  napi_value buffer, result;
  if (!read_call(env, info, &fd, &request, &data, &buffer)) return NULL;
  CHECK(napi_create_int32(env, run_ioctl(fd, request, data), &result));
  return result;
}

static void set_number(napi_env env, napi_value object, const char *key, double value) {
  napi_value number;
  napi_create_double(env, value, &number);
  napi_set_named_property(env, object, key, number);
}

static napi_value make_layout(napi_env env) {
  napi_value layout, requests;
  napi_create_object(env, &layout);
  set_number(env, layout, "ioctlBytes", sizeof(struct dm_ioctl));
  set_number(env, layout, "targetSpecBytes", sizeof(struct dm_target_spec));
  set_number(env, layout, "nameOffset", offsetof(struct dm_ioctl, name));
  set_number(env, layout, "uuidOffset", offsetof(struct dm_ioctl, uuid));
  set_number(env, layout, "devOffset", offsetof(struct dm_ioctl, dev));
  set_number(env, layout, "flagsOffset", offsetof(struct dm_ioctl, flags));
  set_number(env, layout, "nameBytes", DM_NAME_LEN);
  set_number(env, layout, "uuidBytes", DM_UUID_LEN);
  set_number(env, layout, "versionMajor", DM_VERSION_MAJOR);
  napi_create_object(env, &requests);
  set_number(env, requests, "version", DM_VERSION);
  set_number(env, requests, "create", DM_DEV_CREATE);
  set_number(env, requests, "remove", DM_DEV_REMOVE);
  set_number(env, requests, "suspend", DM_DEV_SUSPEND);
  set_number(env, requests, "status", DM_DEV_STATUS);
  set_number(env, requests, "load", DM_TABLE_LOAD);
  set_number(env, requests, "clear", DM_TABLE_CLEAR);
  set_number(env, requests, "tableStatus", DM_TABLE_STATUS);
  napi_set_named_property(env, layout, "requests", requests);
  return layout;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"openControl", NULL, open_control, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioctl", NULL, ioctl_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioctlSync", NULL, ioctl_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layout", NULL, NULL, NULL, NULL, make_layout(env), napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
