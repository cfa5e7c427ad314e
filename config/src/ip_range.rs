//! An address or a CIDR range of addresses (`10.0.0.0/8`, `::1`), as the
//! trusted-proxies setting names them.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `192.168.1.7`, `10.0.0.0/8`, `fd00::/8`; `None` for anything else
    /// (a prefix longer than the address, a host name).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { network, prefix })
    }

    /// Whether `address` is in the range. An IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`, as a dual-stack socket reports it) is compared as
    /// the IPv4 address it is.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                same_prefix(u32::from(net).into(), u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                same_prefix(u128::from(net), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    // A /0 compares nothing; shifting by the full width would overflow.
    shift >= bits || (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ranges_hold_what_their_prefix_says() {
        let r = IpRange::parse("10.0.0.0/8").expect("a range");
        assert!(r.contains(ip("10.200.3.4")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.1.2.3")));
        let one = IpRange::parse("127.0.0.1").expect("an address");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let all = IpRange::parse("0.0.0.0/0").expect("everything");
        assert!(all.contains(ip("203.0.113.9")));
        let v6 = IpRange::parse("fd00::/8").expect("a v6 range");
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn what_is_not_a_range_is_refused() {
        for bad in [
            "",
            "proxy.local",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert_eq!(IpRange::parse(bad), None, "{bad}");
        }
    }
}
