// The only native code in Strait (DESIGN §6a): the socket options Node does not expose, and the fd limit.
//
//   originalDst(fd)        -> { family: 4 | 6, host, port }  getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST)
//   setMark(fd, mark)      -> undefined                      setsockopt(SOL_SOCKET, SO_MARK), needs CAP_NET_ADMIN
//   getMark(fd)            -> number                         getsockopt(SOL_SOCKET, SO_MARK)
//   setTransparent(fd)     -> undefined                      setsockopt(IP_TRANSPARENT), needs CAP_NET_ADMIN
//   markedSocket(family, mark) -> fd                         a fresh non-blocking TCP socket carrying `mark`,
//                                                            for a connection whose very first packet must be marked
//   raiseNofile()          -> { before, soft, hard }         RLIMIT_NOFILE: soft raised to hard (-1 = unlimited)
//
// Failures throw an Error with `errno` (positive errno number) and `syscall`; the TypeScript wrapper
// (original-dst.ts) turns them into StraitError STRAIT_ERR_CAPTURE with a message that suggests the fix.
// node-api only (C ABI, stable across Node versions); no node-addon-api, no nan.

#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// Throws unless the node-api call succeeded; returns nullptr from the enclosing function.
#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      ThrowPendingOr(env, "BUG: node-api call failed: " #call);             \
      return nullptr;                                                        \
    }                                                                        \
  } while (0)

void ThrowPendingOr(napi_env env, const char* message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, message);
}

// Throws an Error carrying errno and the syscall name, like Node's own system errors.
napi_value ThrowErrno(napi_env env, int err, const char* syscall) {
  napi_value message, code, error, errno_value, syscall_value;
  char text[160];
  snprintf(text, sizeof text, "%s failed: %s", syscall, strerror(err));
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_string_utf8(env, "ERR_STRAIT_NATIVE", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok ||
      napi_create_int32(env, err, &errno_value) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_value) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_value) != napi_ok) {
    ThrowPendingOr(env, text);
    return nullptr;
  }
  napi_throw(env, error);
  return nullptr;
}

// Reads argument `index` as a non-negative int32 (fds, families) or uint32 (marks).
bool ArgInt32(napi_env env, napi_callback_info info, size_t index, int32_t* out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc <= index) {
    napi_throw_type_error(env, nullptr, "missing argument");
    return false;
  }
  if (napi_get_value_int32(env, argv[index], out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected a number");
    return false;
  }
  return true;
}

bool ArgUint32(napi_env env, napi_callback_info info, size_t index, uint32_t* out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc <= index) {
    napi_throw_type_error(env, nullptr, "missing argument");
    return false;
  }
  if (napi_get_value_uint32(env, argv[index], out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected a number");
    return false;
  }
  return true;
}

napi_value Endpoint(napi_env env, int family, const void* addr, uint16_t port_be) {
  char host[INET6_ADDRSTRLEN];
  if (inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, host, sizeof host) == nullptr) {
    return ThrowErrno(env, errno, "inet_ntop");
  }
  napi_value result, family_value, host_value, port_value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, family, &family_value));
  CHECK(env, napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &host_value));
  CHECK(env, napi_create_uint32(env, ntohs(port_be), &port_value));
  CHECK(env, napi_set_named_property(env, result, "family", family_value));
  CHECK(env, napi_set_named_property(env, result, "host", host_value));
  CHECK(env, napi_set_named_property(env, result, "port", port_value));
  return result;
}

// The family is taken from the socket's own local address: an IPv4 connection accepted on a dual-stack
// (::) listener is AF_INET6 with a v4-mapped address, and its conntrack entry is IPv4, so it is asked with SOL_IP.
napi_value OriginalDst(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!ArgInt32(env, info, 0, &fd)) return nullptr;

  sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
    return ThrowErrno(env, errno, "getsockname");
  }
  bool ipv4 = local.ss_family == AF_INET;
  if (local.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr;
    ipv4 = IN6_IS_ADDR_V4MAPPED(&a);
  } else if (!ipv4) {
    return ThrowErrno(env, EAFNOSUPPORT, "getsockname");
  }

  if (ipv4) {
    sockaddr_in dst;
    socklen_t len = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      return ThrowErrno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    }
    return Endpoint(env, 4, &dst.sin_addr, dst.sin_port);
  }
  sockaddr_in6 dst;
  socklen_t len = sizeof dst;
  memset(&dst, 0, sizeof dst);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
    return ThrowErrno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
  }
  return Endpoint(env, 6, &dst.sin6_addr, dst.sin6_port);
}

napi_value SetMark(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t mark;
  if (!ArgInt32(env, info, 0, &fd) || !ArgUint32(env, info, 1, &mark)) return nullptr;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    return ThrowErrno(env, errno, "setsockopt(SO_MARK)");
  }
  return nullptr;
}

// IP_TRANSPARENT (and IPV6_TRANSPARENT on an IPv6 socket) on a listening socket, so that TPROXY can hand it
// connections addressed to other hosts (the Service-VIP capture of scripts/iptables/lib.sh). Needs CAP_NET_ADMIN.
napi_value SetTransparent(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!ArgInt32(env, info, 0, &fd)) return nullptr;
  const int on = 1;
  sockaddr_storage local;
  socklen_t len = sizeof local;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return ThrowErrno(env, errno, "getsockname");
  if (local.ss_family == AF_INET6) {
    if (setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof on) != 0) return ThrowErrno(env, errno, "setsockopt(IPV6_TRANSPARENT)");
  }
  if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &on, sizeof on) != 0) return ThrowErrno(env, errno, "setsockopt(IP_TRANSPARENT)");
  return nullptr;
}

napi_value GetMark(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!ArgInt32(env, info, 0, &fd)) return nullptr;
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) {
    return ThrowErrno(env, errno, "getsockopt(SO_MARK)");
  }
  napi_value result;
  CHECK(env, napi_create_uint32(env, mark, &result));
  return result;
}

napi_value MarkedSocket(napi_env env, napi_callback_info info) {
  int32_t family;
  uint32_t mark;
  if (!ArgInt32(env, info, 0, &family) || !ArgUint32(env, info, 1, &mark)) return nullptr;
  if (family != 4 && family != 6) {
    napi_throw_range_error(env, nullptr, "family must be 4 or 6");
    return nullptr;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "setsockopt(SO_MARK)");
  }
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    ThrowPendingOr(env, "BUG: napi_create_int32 failed");
    return nullptr;
  }
  return result;
}

napi_value RlimValue(napi_env env, rlim_t v) {
  napi_value out;
  if (napi_create_double(env, v == RLIM_INFINITY ? -1.0 : static_cast<double>(v), &out) != napi_ok) return nullptr;
  return out;
}

// The fd limit the ztunnel runs under (Node has no setrlimit): raises the soft limit to the hard one.
napi_value RaiseNofile(napi_env env, napi_callback_info) {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return ThrowErrno(env, errno, "getrlimit(RLIMIT_NOFILE)");
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur != lim.rlim_max) {
    rlimit raised = {lim.rlim_max, lim.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return ThrowErrno(env, errno, "setrlimit(RLIMIT_NOFILE)");
    lim = raised;
  }
  napi_value result, before_value, soft_value, hard_value;
  CHECK(env, napi_create_object(env, &result));
  before_value = RlimValue(env, before);
  soft_value = RlimValue(env, lim.rlim_cur);
  hard_value = RlimValue(env, lim.rlim_max);
  if (!before_value || !soft_value || !hard_value) {
    ThrowPendingOr(env, "BUG: napi_create_double failed");
    return nullptr;
  }
  CHECK(env, napi_set_named_property(env, result, "before", before_value));
  CHECK(env, napi_set_named_property(env, result, "soft", soft_value));
  CHECK(env, napi_set_named_property(env, result, "hard", hard_value));
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"originalDst", nullptr, OriginalDst, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setMark", nullptr, SetMark, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setTransparent", nullptr, SetTransparent, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getMark", nullptr, GetMark, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"markedSocket", nullptr, MarkedSocket, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"raiseNofile", nullptr, RaiseNofile, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
