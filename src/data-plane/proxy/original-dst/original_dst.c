// The original destination of a connection that iptables REDIRECTed to the sidecar
// (docs/original-destination.md). Node has no API for getsockopt, so this is the one native
// piece of meshlet: one function, get(fd) -> { address, port, family } | null, that throws an
// Error naming the errno when the kernel refuses.
//
// Built by node-gyp from binding.gyp (scripts/build-native.mjs during `npm ci`). Plain C and
// N-API only: no dependencies, and N-API's stable ABI means one build loads in every Node
// version that has NAPI_VERSION 8 (the headers it was compiled against do not have to match
// the Node that loads it).

#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifdef __linux__

// Not taken from <linux/netfilter_ipv4.h> / <linux/netfilter_ipv6/ip6_tables.h>: those pull
// in kernel headers that clash with glibc's <netinet/in.h> on some distributions. The values
// are kernel ABI and never change.
#ifndef SO_ORIGINAL_DST
// netfilter's IPv4 conntrack answers getsockopt(SOL_IP, 80) with the connection's destination
// before NAT (the address the client dialled), as a struct sockaddr_in.
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
// The same for IPv6, at level SOL_IPV6, as a struct sockaddr_in6 (ip6_tables.h names it).
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef SOL_IP
#define SOL_IP IPPROTO_IP // glibc's name; the kernel's level for IPv4 socket options
#endif
#ifndef SOL_IPV6
#define SOL_IPV6 IPPROTO_IPV6
#endif

// Throws an Error with a code (so callers match without parsing) and the errno's text.
static napi_value throw_errno(napi_env env, const char *what, int fd, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s on fd %d failed: %s (errno %d)", what, fd, strerror(err), err);
  napi_throw_error(env, "ORIGINAL_DST_FAILED", message);
  return NULL;
}

static napi_value js_null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static napi_value make_result(napi_env env, const char *address, int port, int family) {
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, result, "address", v);
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, result, "port", v);
  napi_create_int32(env, family, &v);
  napi_set_named_property(env, result, "family", v);
  return result;
}

static napi_value get(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ORIGINAL_DST_BAD_FD", "get(fd): fd must be a non-negative integer (a connected TCP socket's descriptor)");
    return NULL;
  }

  // Which family's netfilter to ask is decided by the socket's own (local) address: an IPv4
  // connection is tracked by IPv4 conntrack, an IPv6 one by IPv6 conntrack.
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return throw_errno(env, "getsockname", fd, errno);

  int v4 = local.ss_family == AF_INET;
  if (local.ss_family == AF_INET6) {
    // A dual-stack listener (`::`) accepts IPv4 connections as IPv4-mapped IPv6 sockets
    // (::ffff:a.b.c.d). On the wire and in conntrack they are IPv4, so IPv4's option answers
    // (the kernel passes SOL_IP options of a mapped socket to the IPv4 code).
    v4 = IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr);
  } else if (!v4) {
    char message[128];
    snprintf(message, sizeof message, "fd %d is not an IPv4 or IPv6 socket (family %d)", fd, (int)local.ss_family);
    napi_throw_error(env, "ORIGINAL_DST_FAILED", message);
    return NULL;
  }

  char text[INET6_ADDRSTRLEN];
  if (v4) {
    struct sockaddr_in dst;
    socklen_t dst_len = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dst_len) != 0) {
      // ENOENT: conntrack has no entry for this connection, i.e. nothing redirected it (and
      // conntrack is not running in this network namespace): not an error, there is no
      // "original" destination other than the socket's own.
      if (errno == ENOENT) return js_null(env);
      return throw_errno(env, "getsockopt(SOL_IP, SO_ORIGINAL_DST)", fd, errno);
    }
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }

  struct sockaddr_in6 dst6;
  socklen_t dst6_len = sizeof dst6;
  memset(&dst6, 0, sizeof dst6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst6, &dst6_len) != 0) {
    if (errno == ENOENT) return js_null(env); // as for IPv4 above
    return throw_errno(env, "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)", fd, errno);
  }
  // The zone (sin6_scope_id) of a link-local destination is not reported: a sidecar never
  // dials link-local addresses.
  inet_ntop(AF_INET6, &dst6.sin6_addr, text, sizeof text);
  return make_result(env, text, ntohs(dst6.sin6_port), 6);
}

#else // not Linux: netfilter (and so SO_ORIGINAL_DST) exists only there

static napi_value get(napi_env env, napi_callback_info info) {
  (void)info;
  napi_throw_error(env, "ORIGINAL_DST_FAILED", "the original destination (SO_ORIGINAL_DST) exists only on Linux");
  return NULL;
}

#endif

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "get", NAPI_AUTO_LENGTH, get, NULL, &fn);
  napi_set_named_property(env, exports, "get", fn);
  return exports;
}
