// socket_address.h — turn (family, host, port) into a sockaddr.
//
// Parsing happens on the JS thread (it does not depend on any namespace);
// only an IPv6 scope given by interface *name* ("fe80::1%veth0") is resolved
// later, on the namespace thread, because interface names are per netns.
//
// Man pages relied on: inet_pton(3), unix(7), ipv6(7), if_nametoindex(3).
#pragma once

#include <sys/socket.h>

#include <string>

namespace jumper {

enum class Family { kIPv4, kIPv6, kUnix };

// A parsed endpoint. `scope_name` is non-empty only for an IPv6 link-local
// address whose scope is an interface name still to be resolved.
struct SocketAddress {
  Family family = Family::kIPv4;
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string scope_name;
};

// Parse "ipv4"/"ipv6"/"unix". Returns false for anything else.
bool ParseFamily(const std::string& text, Family* out);

// Fill `out` from the arguments. On failure returns false and sets `error`
// to a human-readable reason (the caller throws a TypeError/RangeError).
// For kUnix, `host` is the path; a leading NUL byte selects the Linux
// abstract namespace (unix(7)), which is scoped to the network namespace.
bool BuildSocketAddress(Family family, const std::string& host, int port,
                        SocketAddress* out, std::string* error);

// Resolve a pending interface-name scope in the *current* thread's network
// namespace. Returns 0 or an errno value (ENODEV when the name is unknown).
int ResolveScope(SocketAddress* address);

int SocketDomain(Family family);

}  // namespace jumper
