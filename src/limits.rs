//! Rate limits: a token bucket per user, or per client address for requests without a valid
//! token; and who the client is, behind trusted proxies.
//!
//! Invariants a reviewer can check in this file alone:
//! - a key's bucket holds at most `burst` tokens and refills at `per_minute / 60` a second; a
//!   request takes a whole token or is refused, and is told the whole seconds until one is there;
//! - memory is bounded: at most `SHARDS * SHARD_CAPACITY` buckets of fixed size (a key is kept
//!   as its hash). A full shard forgets the buckets that have refilled, which changes nothing,
//!   and, when every one is in use, the longest idle eighth of them;
//! - a request locks only its key's shard, one of `SHARDS`, picked by a hash keyed at random
//!   per process, so that no one can aim made-up keys at one shard;
//! - the client address is the socket's peer; only when the peer is a trusted proxy is
//!   `X-Forwarded-For` read, right to left, to the first address that is not a trusted proxy.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use crate::lock;

/// Shards of the bucket table; each has a lock of its own.
const SHARDS: usize = 64;
/// Buckets a shard holds at most: 114,688 in all. 7/8 of 2,048, so that a shard's table never
/// grows past 2,048 slots (hashbrown's load factor) of 33 bytes: 4.3 MiB in all; a million
/// made-up keys grew the process by 10 MiB, allocator slack included (the test below, run alone).
const SHARD_CAPACITY: usize = 1792;

/// Whose bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key<'a> {
    User(&'a str),
    /// IPv6 addresses count by their /64, which one client is usually given whole.
    Address(IpAddr),
}

/// The outcome of one request against its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Whole seconds until a request would be allowed (0 when one would be now).
    pub wait: u64,
}

/// The per-instance limiter; `None` in `App` when limits are off.
pub struct Limiter {
    /// Requests a minute; the refill rate.
    pub per_minute: u32,
    burst: f64,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<u64, Bucket>>]>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    /// `per_minute` and `burst` are both at least 1 (config.rs).
    pub fn new(per_minute: u32, burst: u32) -> Limiter {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Limiter { per_minute, burst: f64::from(burst), hasher: RandomState::new(), shards }
    }

    /// Takes a token from `key`'s bucket, if there is one.
    pub fn check(&self, key: Key, now: Instant) -> Verdict {
        let key = match key {
            Key::Address(IpAddr::V6(v6)) => Key::Address(IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !0 << 64))),
            other => other,
        };
        let hash = self.hasher.hash_one(key);
        let rate = f64::from(self.per_minute) / 60.0;
        let mut shard = lock(&self.shards[(hash >> 32) as usize % SHARDS]);
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&hash) {
            self.make_room(&mut shard, now, rate);
        }
        let bucket = shard.entry(hash).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = self.refilled(bucket, now, rate);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let wait = if bucket.tokens >= 1.0 { 0 } else { ((1.0 - bucket.tokens) / rate).ceil() as u64 };
        Verdict { allowed, remaining: bucket.tokens.floor() as u64, wait }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant, rate: f64) -> f64 {
        (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate).min(self.burst)
    }

    /// Forgets the buckets that are full again (a new one would be the same); when that frees
    /// nothing, the longest idle eighth, whose keys start again with a full bucket.
    fn make_room(&self, shard: &mut HashMap<u64, Bucket>, now: Instant, rate: f64) {
        shard.retain(|_, bucket| self.refilled(bucket, now, rate) < self.burst);
        if shard.len() >= SHARD_CAPACITY {
            let mut idle: Vec<Instant> = shard.values().map(|bucket| bucket.at).collect();
            let (_, &mut cut, _) = idle.select_nth_unstable(SHARD_CAPACITY / 8);
            shard.retain(|_, bucket| bucket.at > cut);
        }
    }

    /// Buckets held now, for tests and `/metrics`.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An address or a network, as `TRUSTED_PROXIES` and `METRICS_ALLOW` list them: `10.0.0.7`,
/// `10.0.0.0/8`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn parse(text: &str) -> Option<Net> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Net { addr, prefix })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let masked = |bits: u128, width: u8| match self.prefix {
            0 => 0,
            prefix => bits >> (width - prefix),
        };
        match (self.addr, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => masked(net.to_bits().into(), 32) == masked(a.to_bits().into(), 32),
            (IpAddr::V6(net), IpAddr::V6(a)) => masked(net.to_bits(), 128) == masked(a.to_bits(), 128),
            _ => false,
        }
    }
}

/// The loopback networks: who may read `/metrics` unless `METRICS_ALLOW` says otherwise.
pub fn loopback() -> Vec<Net> {
    ["127.0.0.0/8", "::1"].iter().filter_map(|net| Net::parse(net)).collect()
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address
/// of `X-Forwarded-For` (all its lines, in order) that is not a trusted proxy (`addr:port` and
/// `[v6]:port` read as their address). An entry that is no address (`unknown`) ends the walk
/// with the unspecified address: never a trusted proxy's own (loopback for a sidecar, which
/// `METRICS_ALLOW` may list), and one bucket for all such clients.
pub fn client_address<'a>(peer: IpAddr, forwarded: impl Iterator<Item = &'a str>, trusted: &[Net]) -> IpAddr {
    let is_trusted = |addr: IpAddr| trusted.iter().any(|net| net.contains(addr));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded.flat_map(|line| line.split(',')).map(str::trim).collect();
    for hop in hops.into_iter().rev() {
        let addr = hop.parse::<IpAddr>().or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()));
        match addr {
            Ok(addr) if is_trusted(addr) => client = addr.to_canonical(),
            Ok(addr) => return addr.to_canonical(),
            Err(_) => return IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = Limiter::new(60, 3); // one a second
        let t0 = Instant::now();
        let user = Key::User("u1");
        let verdicts: Vec<Verdict> = (0..4).map(|_| limiter.check(user, t0)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict { allowed: true, remaining: 2, wait: 0 },
                Verdict { allowed: true, remaining: 1, wait: 0 },
                Verdict { allowed: true, remaining: 0, wait: 1 },
                Verdict { allowed: false, remaining: 0, wait: 1 },
            ]
        );
        assert!(limiter.check(Key::User("u2"), t0).allowed, "another user has a bucket of their own");
        assert!(!limiter.check(user, t0 + Duration::from_millis(900)).allowed);
        assert!(limiter.check(user, t0 + Duration::from_millis(1000)).allowed, "a token a second");
        let later = limiter.check(user, t0 + Duration::from_secs(3600));
        assert_eq!(later, Verdict { allowed: true, remaining: 2, wait: 0 }, "refilled to the burst, not beyond");
        // 600 a minute: a token each 0.1 s; after the burst the wait rounds up to a second.
        let fast = Limiter::new(600, 1);
        assert_eq!(fast.check(user, t0), Verdict { allowed: true, remaining: 0, wait: 1 });
        assert!(!fast.check(user, t0 + Duration::from_millis(50)).allowed);
        assert!(fast.check(user, t0 + Duration::from_millis(150)).allowed);
    }

    #[test]
    fn users_and_addresses_are_different_keys_and_ipv6_counts_by_its_64() {
        let limiter = Limiter::new(60, 1);
        let t0 = Instant::now();
        let v6 = |text: &str| Key::Address(text.parse().unwrap());
        assert!(limiter.check(v6("2001:db8::1"), t0).allowed);
        assert!(!limiter.check(v6("2001:db8::ffff:1"), t0).allowed, "same /64");
        assert!(limiter.check(v6("2001:db8:0:1::1"), t0).allowed, "next /64");
        assert!(limiter.check(Key::Address("10.0.0.1".parse().unwrap()), t0).allowed);
        assert!(limiter.check(Key::Address("10.0.0.2".parse().unwrap()), t0).allowed, "IPv4: each address");
        assert!(limiter.check(Key::User("10.0.0.1"), t0).allowed, "a user id is not an address");
    }

    /// A million made-up keys, each seen once (an attacker spoofing addresses), leave the table
    /// at its bound; and a busy key among them keeps its bucket, so it stays limited.
    #[test]
    fn a_million_distinct_keys_stay_within_the_bound() {
        let rss_kib = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB").to_owned();
            line.split_whitespace().nth(1).and_then(|kib| kib.parse::<i64>().ok()).unwrap_or(0)
        };
        let before = rss_kib();
        let limiter = Limiter::new(1, 5); // slow refill: no bucket is ever full again by itself
        let t0 = Instant::now();
        let mut refused = 0;
        for i in 0..1_000_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            limiter.check(Key::Address(IpAddr::from(i.to_be_bytes())), now);
            if i % 1000 == 0 && !limiter.check(Key::User("busy"), now).allowed {
                refused += 1;
            }
        }
        assert!(limiter.len() <= SHARDS * SHARD_CAPACITY, "{} buckets", limiter.len());
        assert!(limiter.len() > SHARDS * SHARD_CAPACITY / 2, "the table is used: {}", limiter.len());
        assert_eq!(refused, 1000 - 5, "the busy key was never forgotten");
        // What the process's resident memory grew by, for the record (`--nocapture`, alone:
        // tests running beside this one allocate too, so it is not asserted; the bound is the
        // bucket count above, each bucket a fixed size).
        let grown = rss_kib() - before;
        eprintln!("{} buckets; resident memory grew by {grown} KiB", limiter.len());
    }

    #[test]
    fn networks_parse_and_match() {
        let net = |text| Net::parse(text).unwrap_or_else(|| panic!("{text}"));
        assert!(net("10.0.0.0/8").contains("10.200.1.1".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(net("10.0.0.7").contains("10.0.0.7".parse().unwrap()));
        assert!(!net("10.0.0.7").contains("10.0.0.8".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(!net("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(net("::1").contains("::1".parse().unwrap()));
        assert!(net("127.0.0.0/8").contains("::ffff:127.0.0.1".parse().unwrap()), "IPv4-mapped");
        assert!(net("fd00::/8").contains("fd12::1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.0/", "localhost", "10.0.0.0/8/8", " 10.0.0.1"] {
            assert_eq!(Net::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_added() {
        let trusted = [Net::parse("10.0.0.0/8").unwrap(), Net::parse("::1").unwrap()];
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let client = |peer: &str, lines: &[&str]| client_address(ip(peer), lines.iter().copied(), &trusted);
        assert_eq!(client("203.0.113.9", &["1.2.3.4"]), ip("203.0.113.9"), "an untrusted peer's header is ignored");
        assert_eq!(client("10.0.0.1", &[]), ip("10.0.0.1"), "a proxy without the header is the client");
        assert_eq!(client("10.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(client("10.0.0.1", &["6.6.6.6, 1.2.3.4"]), ip("1.2.3.4"), "the left is the client's to forge");
        assert_eq!(client("10.0.0.1", &["6.6.6.6, 1.2.3.4, 10.0.0.2"]), ip("1.2.3.4"), "proxies chain");
        assert_eq!(client("10.0.0.1", &["6.6.6.6", "1.2.3.4 , 10.0.0.2"]), ip("1.2.3.4"), "lines in order");
        assert_eq!(client("10.0.0.1", &["1.2.3.4, unknown, 10.0.0.2"]), ip("0.0.0.0"), "junk ends the walk");
        assert_eq!(client("::1", &["unknown"]), ip("0.0.0.0"), "never the proxy's own loopback");
        assert_eq!(client("10.0.0.1", &["1.2.3.4:5678"]), ip("1.2.3.4"), "with a port");
        assert_eq!(client("10.0.0.1", &["[2001:db8::5]:443"]), ip("2001:db8::5"));
        assert_eq!(client("::1", &["2001:db8::5"]), ip("2001:db8::5"));
        assert_eq!(client("::ffff:10.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"), "IPv4-mapped peer");
    }
}
