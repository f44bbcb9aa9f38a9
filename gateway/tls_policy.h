// TLS 1.3 only, for every TLS connection this process makes or accepts.
//
// Debian 12's gRPC 1.51 has no public setting for the minimum TLS version
// and sets each SSL_CTX's minimum protocol to TLS 1.2 itself (overriding
// OpenSSL's MinProtocol), but it never clears OpenSSL's option flags. So
// kpx loads its own OpenSSL configuration, in process, from text compiled
// into the program (no file, no OPENSSL_CONF): its "system_default"
// section sets "Protocol = -SSLv3, -TLSv1, -TLSv1.1, -TLSv1.2", i.e. the
// option SSL_OP_NO_TLSv1_2 (and the older ones) on every SSL_CTX created
// afterwards. With gRPC's own range (1.2 to 1.3) that leaves TLS 1.3 alone,
// for the peer and authority listeners and for outgoing channels alike.
// (The metrics endpoint is plain HTTP and is not touched by this.)
//
// EnforceTls13Only() applies that configuration once per process
// (std::call_once: safe from any thread, any number of times) and then
// checks that it took effect: a fresh SSL_CTX, and an SSL made from it,
// must carry SSL_OP_NO_TLSv1_2 even after a TLS 1.2 minimum is set on it as
// gRPC does. It returns the same result to every caller. It must run
// before the first gRPC credentials are made: kpxd and kpxctl call it
// first thing in main, NodeServer::Start and the credential and channel
// makers in gateway/tls.h call it too (so in-process tests are covered),
// and kpxd refuses to start if it fails.
//
// The configuration replaces the process's OpenSSL "ssl_conf" settings
// (Debian's /etc/ssl/openssl.cnf sets none); nothing else in OpenSSL's
// configuration is changed.
#ifndef KPX_GATEWAY_TLS_POLICY_H_
#define KPX_GATEWAY_TLS_POLICY_H_

#include "absl/status/status.h"

namespace kpx::gateway {

// OK once TLS 1.2 and older are refused process-wide; otherwise INTERNAL
// with one line saying what failed (the process must not serve then).
absl::Status EnforceTls13Only();

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_TLS_POLICY_H_
