// socket_address.cc — turn (family, host, port) into a sockaddr.
//
// Man pages relied on: inet_pton(3), unix(7), ipv6(7), if_nametoindex(3).
#include "socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace jumper {

namespace {

constexpr int kMaxPort = 65535;
constexpr char kScopeSeparator = '%';

bool ParseScopeNumber(const std::string& text, uint32_t* out) {
  if (text.empty() || text.size() > 10) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const unsigned long value = std::strtoul(text.c_str(), nullptr, 10);
  if (value > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(value);
  return true;
}

}  // namespace

bool ParseFamily(const std::string& text, Family* out) {
  if (text == "ipv4") {
    *out = Family::kIPv4;
  } else if (text == "ipv6") {
    *out = Family::kIPv6;
  } else if (text == "unix") {
    *out = Family::kUnix;
  } else {
    return false;
  }
  return true;
}

int SocketDomain(Family family) {
  switch (family) {
    case Family::kIPv4:
      return AF_INET;
    case Family::kIPv6:
      return AF_INET6;
    case Family::kUnix:
      return AF_UNIX;
  }
  return AF_UNSPEC;
}

bool BuildSocketAddress(Family family, const std::string& host, int port,
                        SocketAddress* out, std::string* error) {
  *out = SocketAddress{};
  out->family = family;

  if (family == Family::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&out->storage);
    un->sun_family = AF_UNIX;
    const bool abstract = !host.empty() && host[0] == '\0';
    // A path name needs room for its terminating NUL; an abstract name
    // does not (its length is carried by addrlen).
    const size_t limit = sizeof(un->sun_path) - (abstract ? 0 : 1);
    if (host.empty() || host.size() > limit) {
      *error = "unix socket path must be 1.." + std::to_string(limit) + " bytes";
      return false;
    }
    if (!abstract && host.find('\0') != std::string::npos) {
      *error = "unix socket path contains a NUL byte";
      return false;
    }
    std::memcpy(un->sun_path, host.data(), host.size());
    out->length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + host.size() +
                                         (abstract ? 0 : 1));
    return true;
  }

  if (port < 0 || port > kMaxPort) {
    *error = "port must be an integer in 0..65535";
    return false;
  }

  if (family == Family::kIPv4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out->storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) {
      *error = "host is not an IPv4 address literal: " + host;
      return false;
    }
    out->length = sizeof(sockaddr_in);
    return true;
  }

  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(static_cast<uint16_t>(port));
  std::string literal = host;
  const size_t percent = host.find(kScopeSeparator);
  if (percent != std::string::npos) {
    literal = host.substr(0, percent);
    const std::string scope = host.substr(percent + 1);
    if (scope.empty()) {
      *error = "empty IPv6 scope in: " + host;
      return false;
    }
    uint32_t index = 0;
    if (ParseScopeNumber(scope, &index)) {
      in6->sin6_scope_id = index;
    } else {
      out->scope_name = scope;  // resolved inside the namespace, see ResolveScope
    }
  }
  if (inet_pton(AF_INET6, literal.c_str(), &in6->sin6_addr) != 1) {
    *error = "host is not an IPv6 address literal: " + host;
    return false;
  }
  out->length = sizeof(sockaddr_in6);
  return true;
}

int ResolveScope(SocketAddress* address) {
  if (address->scope_name.empty()) return 0;
  const unsigned int index = if_nametoindex(address->scope_name.c_str());
  if (index == 0) return errno != 0 ? errno : ENODEV;
  reinterpret_cast<sockaddr_in6*>(&address->storage)->sin6_scope_id = index;
  return 0;
}

}  // namespace jumper
