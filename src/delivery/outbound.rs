//! The outbound host policy (contract §8), for every connection Herald
//! opens on a tenant's behalf: SMTP servers, and HTTP endpoints (OAuth2
//! token endpoints, provider APIs, webhooks) through [`super::http`].
//!
//! A host that resolves to a loopback, private, link-local or otherwise
//! non-public address is refused unless the operator lists it in
//! `HERALD_SMTP_ALLOW_HOSTS`. A name is resolved once and the caller
//! connects to exactly the addresses that passed, so a DNS answer that
//! changes between the check and the connect (DNS rebinding) cannot slip an
//! internal address in. A refusal does not say which address a name
//! resolved to (it would tell any org about internal DNS); the log does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The policy: which hosts may resolve to internal addresses anyway.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// `HERALD_SMTP_ALLOW_HOSTS`, lower-cased names or addresses.
    allow_hosts: Vec<String>,
}

/// Why a host may not be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name did not resolve (retryable: DNS may come back).
    #[error("could not resolve {what} {host}: {reason}")]
    Unresolvable { what: &'static str, host: String, reason: String },
    /// The host is, or resolves to, an internal address (permanent).
    #[error("refused by the outbound host policy: {host} {how} (allow it with HERALD_SMTP_ALLOW_HOSTS)")]
    Internal { host: String, how: &'static str },
}

impl Refusal {
    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Refusal::Internal { .. })
    }

    /// The failure class used in the delivery log and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Refusal::Unresolvable { .. } => "network",
            Refusal::Internal { .. } => "policy",
        }
    }
}

impl HostPolicy {
    pub fn new(allow_hosts: &[String]) -> HostPolicy {
        HostPolicy { allow_hosts: allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect() }
    }

    /// Resolves `host` once and applies the policy to every address it
    /// resolves to. `what` names the host in errors ("SMTP host", "webhook
    /// host"). Brackets around IPv6 literals are accepted.
    pub async fn resolve(&self, what: &'static str, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let literal = bare.parse::<IpAddr>().ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => {
                let found = tokio::net::lookup_host((bare.as_str(), port)).await;
                match found {
                    Ok(found) => found.collect(),
                    Err(e) => return Err(Refusal::Unresolvable { what, host: bare.clone(), reason: e.to_string() }),
                }
            }
        };
        if addrs.is_empty() {
            return Err(Refusal::Unresolvable { what, host: bare, reason: "no addresses".into() });
        }
        if self.allow_hosts.contains(&bare) {
            return Ok(addrs);
        }
        if let Some(ip) = addrs.iter().map(SocketAddr::ip).find(|ip| is_internal(*ip)) {
            tracing::warn!(host = %bare, %ip, what, "host refused by the outbound host policy");
            let how = if literal.is_some() { "is an internal address" } else { "resolves to an internal address" };
            return Err(Refusal::Internal { host: bare, how });
        }
        Ok(addrs)
    }
}

/// True for addresses an SMTP host may not resolve to unless allow-listed:
/// anything but a public unicast address. IPv6 forms that carry an IPv4
/// address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address
/// they carry, since that is where the packets end up.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_internal_v4(v4),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || v6.segments()[..3] == [0x64, 0xff9b, 1] // local-use NAT64 64:ff9b:1::/48
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                    || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed internally)
            }
        },
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
        || v4.is_multicast() // 224.0.0.0/4
        || a == 0 // 0.0.0.0/8, "this network"
        || a >= 240 // 240.0.0.0/4, reserved
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // 192.0.0.0/24, IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
}

/// The IPv4 address an IPv6 address carries, for the forms that deliver to
/// it: IPv4-mapped, IPv4-translated (`::ffff:0:a.b.c.d`, SIIT),
/// IPv4-compatible (deprecated), NAT64 (64:ff9b::/96) and 6to4 (2002::/16,
/// the address in bits 16–48).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // ::a.b.c.d, but not :: and ::1 (unspecified, loopback: IPv6's own).
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1", // multicast
            "239.1.2.3", // multicast
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fec0::1",          // site-local
            "ff02::1",          // multicast
            "ff0e::1",          // multicast, global scope
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:10.0.0.1",
            "::127.0.0.1", // IPv4-compatible
            "::10.0.0.1",
            "64:ff9b::7f00:1",  // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",   // NAT64 of 10.0.0.1
            "2002:7f00:1::1",   // 6to4 of 127.0.0.1
            "2002:c0a8:101::1", // 6to4 of 192.168.1.1
            "2002::1",          // 6to4 of 0.0.0.0
            "192.0.0.1",        // IETF protocol assignments
            "192.0.0.170",
            "198.18.0.1", // benchmarking
            "198.19.255.254",
            "64:ff9b:1::1",            // local-use NAT64
            "64:ff9b:1:ffff::808:808", // local-use NAT64, whatever it carries
            "::ffff:0:127.0.0.1",      // IPv4-translated
            "::ffff:0:10.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2001:4860:4860::8888",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
            "2002:808:808::1",  // 6to4 of 8.8.8.8
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "::ffff:0:8.8.8.8", // IPv4-translated 8.8.8.8
            "64:ff9b:2::1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn listed_hosts_pass_and_refusals_name_no_address() {
        let open = HostPolicy::new(&["LocalHost".to_owned()]);
        assert!(open.resolve("webhook host", "localhost", 80).await.is_ok());
        let closed = HostPolicy::default();
        let refusal = closed.resolve("webhook host", "localhost", 80).await.unwrap_err();
        assert!(refusal.is_permanent() && refusal.class() == "policy");
        let text = refusal.to_string();
        assert!(text.contains("localhost resolves to an internal address"), "{text}");
        assert!(!text.contains("127.0.0.1") && !text.contains("::1"), "{text}");
        let literal = closed.resolve("webhook host", "[::1]", 80).await.unwrap_err();
        assert!(literal.to_string().contains("::1 is an internal address"), "{literal}");
    }
}
