// NFQUEUE binding (libnetfilter_queue) for the sidecar's non-TCP guard (src/net/packet-queue.ts).
//
// The kernel queues the first packet of each new non-TCP flow (iptables -j NFQUEUE, without
// --queue-bypass); this addon reads those packets on Node's own event loop (a uv_poll on the
// netlink socket, never a blocking read or a thread), hands them to JavaScript in batches, and
// sends the verdicts back by packet id. Nothing here decides anything.
//
// Bounds: the kernel keeps at most `maxLen` packets waiting for a verdict (nfq_set_queue_maxlen;
// beyond that it drops them, which is failing closed since the queue has no fail-open flag), and
// copies at most `copyRange` bytes of each (enough for the IP and L4 headers). One poll callback
// reads at most READ_BUDGET messages so a flood cannot starve the rest of the loop.
//
// A second function, flushMarked(), deletes the conntrack entries carrying a mark (ctnetlink
// IPCTNL_MSG_CT_DELETE with a CTA_MARK/CTA_MARK_MASK filter, as `conntrack -D --mark` does) so
// that a rule change re-decides flows that were accepted under the old rules.
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>

#define READ_BUDGET 256
// Per packet in a batch: id u32, mark u32, uid u32 (0xffffffff unknown), hook u8, pad u8, len u16.
#define REC_HEADER 16
#define RECV_BUF (256 * 1024)

typedef struct {
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  struct nfq_handle *h;
  struct nfq_q_handle *qh;
  int fd;
  // Allocated apart from the Queue: libuv owns it until uv_close's callback frees it.
  uv_poll_t *poll;
  unsigned copy_range;
  // The batch being filled by the libnetfilter_queue callback during one poll turn.
  unsigned char *batch;
  size_t batch_len;
  size_t batch_cap;
  // Counters the JS side reads with stats().
  double lost;      // ENOBUFS: the socket buffer overflowed; those packets are lost to us
  double truncated; // batch full: packet dropped by verdict right away (fail closed)
  char *recv_buf;
} Queue;

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
  (void)msg;
  Queue *q = (Queue *)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) return 0;
  uint32_t id = ntohl(ph->packet_id);
  unsigned char *payload = NULL;
  int len = nfq_get_payload(nfa, &payload);
  if (len < 0) len = 0;
  if ((unsigned)len > q->copy_range) len = (int)q->copy_range;
  if (q->batch_len + REC_HEADER + (size_t)len > q->batch_cap) {
    // Cannot hand it on this turn: deny it now rather than leave it waiting.
    nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
    q->truncated++;
    return 0;
  }
  uint32_t uid = 0xffffffffu;
  if (nfq_get_uid(nfa, &uid) == 0) uid = 0xffffffffu;
  uint32_t mark = nfq_get_nfmark(nfa);
  unsigned char *p = q->batch + q->batch_len;
  memcpy(p, &id, 4);
  memcpy(p + 4, &mark, 4);
  memcpy(p + 8, &uid, 4);
  p[12] = ph->hook;
  p[13] = 0;
  uint16_t l16 = (uint16_t)len;
  memcpy(p + 14, &l16, 2);
  if (len > 0) memcpy(p + REC_HEADER, payload, (size_t)len);
  q->batch_len += REC_HEADER + (size_t)len;
  return 0;
}

static void deliver(Queue *q) {
  if (q->batch_len == 0) return;
  napi_env env = q->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value buffer, cb, recv, result;
  void *dst;
  napi_create_buffer_copy(env, q->batch_len, q->batch, &dst, &buffer);
  q->batch_len = 0;
  napi_get_reference_value(env, q->callback, &cb);
  napi_get_global(env, &recv); // napi_make_callback wants an object as `this`
  napi_status st = napi_make_callback(env, q->async, recv, cb, 1, &buffer, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (st == napi_pending_exception || pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  Queue *q = (Queue *)handle->data;
  if (q == NULL || status < 0 || q->h == NULL) return;
  for (int i = 0; i < READ_BUDGET; i++) {
    ssize_t n = recv(q->fd, q->recv_buf, RECV_BUF, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        q->lost++;
        continue;
      }
      break; // EAGAIN: drained
    }
    if (n == 0) break;
    nfq_handle_packet(q->h, q->recv_buf, (int)n);
  }
  deliver(q);
}

static void free_handle(uv_handle_t *handle) {
  free(handle);
}

static void queue_close(Queue *q) {
  if (q->poll != NULL) {
    // Stop polling before the descriptor is closed below; the handle itself is freed by libuv.
    uv_poll_stop(q->poll);
    q->poll->data = NULL;
    uv_close((uv_handle_t *)q->poll, free_handle);
    q->poll = NULL;
  }
  if (q->qh != NULL) {
    nfq_destroy_queue(q->qh);
    q->qh = NULL;
  }
  if (q->h != NULL) {
    nfq_close(q->h);
    q->h = NULL;
  }
}

static void finalize_queue(napi_env env, void *data, void *hint) {
  (void)hint;
  Queue *q = (Queue *)data;
  queue_close(q);
  if (q->callback != NULL) napi_delete_reference(env, q->callback);
  if (q->async != NULL) napi_async_destroy(env, q->async);
  free(q->batch);
  free(q->recv_buf);
  free(q);
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof(message), "%s: %s", what, strerror(err));
  char code[32];
  snprintf(code, sizeof(code), "%d", err);
  napi_throw_error(env, code, message);
  return NULL;
}

// Marks the handles open() returns (N-API 8 type tags): another addon's external, or one of ours
// of another kind, is refused with a TypeError instead of being read as a Queue.
static const napi_type_tag QUEUE_TAG = {0x5e3d1c7a9b204f61ULL, 0xa4f2c8e01d7b6953ULL};

static Queue *unwrap(napi_env env, napi_value value) {
  Queue *q = NULL;
  napi_valuetype t;
  bool tagged = false;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, value, &QUEUE_TAG, &tagged) != napi_ok ||
      !tagged || napi_get_value_external(env, value, (void **)&q) != napi_ok || q == NULL) {
    napi_throw_type_error(env, NULL, "expected a queue handle from open()");
    return NULL;
  }
  return q;
}

// open(queueNum, maxLen, copyRange, onBatch) -> handle
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t num = 0, maxlen = 0, range = 0;
  napi_valuetype t;
  if (argc < 4 || napi_get_value_uint32(env, argv[0], &num) != napi_ok || napi_get_value_uint32(env, argv[1], &maxlen) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &range) != napi_ok || napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function || num > 65535 ||
      range < 64 || range > 65535) {
    napi_throw_type_error(env, NULL, "open(queueNum: 0..65535, maxLen: number, copyRange: 64..65535, onBatch: function)");
    return NULL;
  }
  Queue *q = calloc(1, sizeof(Queue));
  if (q == NULL) return throw_errno(env, "calloc", ENOMEM);
  q->env = env;
  q->copy_range = range;
  q->batch_cap = (size_t)READ_BUDGET * (REC_HEADER + range);
  q->batch = malloc(q->batch_cap);
  q->recv_buf = malloc(RECV_BUF);
  if (q->batch == NULL || q->recv_buf == NULL) {
    free(q->batch);
    free(q->recv_buf);
    free(q);
    return throw_errno(env, "malloc", ENOMEM);
  }
  errno = 0;
  q->h = nfq_open();
  if (q->h == NULL) {
    int e = errno ? errno : EPERM;
    finalize_queue(env, q, NULL);
    return throw_errno(env, "nfq_open", e);
  }
  q->qh = nfq_create_queue(q->h, (uint16_t)num, on_packet, q);
  if (q->qh == NULL) {
    // EPERM without CAP_NET_ADMIN in the network namespace; EBUSY when another process holds it.
    int e = errno ? errno : EPERM;
    finalize_queue(env, q, NULL);
    return throw_errno(env, "binding the NFQUEUE (needs CAP_NET_ADMIN in the pod's network namespace)", e);
  }
  if (nfq_set_mode(q->qh, NFQNL_COPY_PACKET, range) < 0) {
    int e = errno;
    finalize_queue(env, q, NULL);
    return throw_errno(env, "nfq_set_mode", e);
  }
  if (maxlen > 0 && nfq_set_queue_maxlen(q->qh, maxlen) < 0) {
    int e = errno;
    finalize_queue(env, q, NULL);
    return throw_errno(env, "nfq_set_queue_maxlen", e);
  }
  // UID_GID: who sent an outbound packet (for the log); GSO: headers are all we read, so the
  // kernel need not segment large UDP GSO sends for us. Never FAIL_OPEN.
  uint32_t flags = NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO;
  nfq_set_queue_flags(q->qh, flags, flags);
  // Room for a full queue of copied packets, so the kernel does not drop our notifications
  // (a lost notification is a packet that waits for a verdict until the queue is full).
  nfnl_rcvbufsiz(nfq_nfnlh(q->h), (unsigned)maxlen * (range + 256) + 65536);
  q->fd = nfq_fd(q->h);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_t *poll = malloc(sizeof(uv_poll_t));
  if (poll == NULL || uv_poll_init(loop, poll, q->fd) != 0) {
    free(poll);
    finalize_queue(env, q, NULL);
    return throw_errno(env, "uv_poll_init", EINVAL);
  }
  poll->data = q;
  q->poll = poll;
  napi_create_reference(env, argv[3], 1, &q->callback);
  napi_value name;
  napi_create_string_utf8(env, "sidewall:nfqueue", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &q->async);
  uv_poll_start(q->poll, UV_READABLE, on_readable);
  napi_value handle;
  napi_create_external(env, q, finalize_queue, NULL, &handle);
  napi_type_tag_object(env, handle, &QUEUE_TAG);
  return handle;
}

// verdict(handle, id, accept, mark) -> true when sent
static napi_value Verdict(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t id = 0, mark = 0;
  bool accept = false;
  // Each argument checked: a failed read would leave id 0 and accept false, a verdict on another
  // packet than the one meant.
  if (argc < 4 || napi_get_value_uint32(env, argv[1], &id) != napi_ok || napi_get_value_bool(env, argv[2], &accept) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &mark) != napi_ok) {
    napi_throw_type_error(env, NULL, "verdict(handle, id: number, accept: boolean, mark: number)");
    return NULL;
  }
  Queue *q = unwrap(env, argv[0]);
  if (q == NULL) return NULL;
  napi_value out;
  if (q->qh == NULL) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  int rc = nfq_set_verdict2(q->qh, id, accept ? NF_ACCEPT : NF_DROP, mark, 0, NULL);
  napi_get_boolean(env, rc >= 0, &out);
  return out;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "expected a queue handle from open()");
    return NULL;
  }
  Queue *q = unwrap(env, argv[0]);
  if (q == NULL) return NULL;
  queue_close(q);
  return NULL;
}

static napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "expected a queue handle from open()");
    return NULL;
  }
  Queue *q = unwrap(env, argv[0]);
  if (q == NULL) return NULL;
  napi_value out, lost, truncated;
  napi_create_object(env, &out);
  napi_create_double(env, q->lost, &lost);
  napi_create_double(env, q->truncated, &truncated);
  napi_set_named_property(env, out, "lost", lost);
  napi_set_named_property(env, out, "truncated", truncated);
  return out;
}

// flushMarked(family: 4|6, mark, mask) -> 0 or an errno. One ctnetlink request; waits for the ack.
static napi_value FlushMarked(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t family = 0, mark = 0, mask = 0;
  if (argc < 3 || napi_get_value_uint32(env, argv[0], &family) != napi_ok || napi_get_value_uint32(env, argv[1], &mark) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &mask) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, NULL, "flushMarked(family: 4 | 6, mark: number, mask: number)");
    return NULL;
  }
  int result = 0;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) {
    result = errno;
  } else {
    struct {
      struct nlmsghdr nlh;
      struct nfgenmsg nfg;
      struct nlattr a_mark;
      uint32_t mark;
      struct nlattr a_mask;
      uint32_t mask;
    } __attribute__((packed)) req;
    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.nlh.nlmsg_seq = 1;
    req.nfg.nfgen_family = family == 4 ? AF_INET : AF_INET6;
    req.nfg.version = NFNETLINK_V0;
    req.a_mark.nla_len = sizeof(struct nlattr) + 4;
    req.a_mark.nla_type = CTA_MARK;
    req.mark = htonl(mark);
    req.a_mask.nla_len = sizeof(struct nlattr) + 4;
    req.a_mask.nla_type = CTA_MARK_MASK;
    req.mask = htonl(mask);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
      result = errno;
    } else {
      char buf[512];
      struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0) {
        result = errno;
      } else if ((size_t)n >= sizeof(struct nlmsghdr) + sizeof(int)) {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (h->nlmsg_type == NLMSG_ERROR) {
          int err = *(int *)NLMSG_DATA(h);
          // ENOENT: nothing carried the mark, which is success for us.
          result = (err == 0 || err == -ENOENT) ? 0 : -err;
        }
      }
    }
    close(fd);
  }
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_default, NULL},
      {"verdict", NULL, Verdict, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, Stats, NULL, NULL, NULL, napi_default, NULL},
      {"flushMarked", NULL, FlushMarked, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
