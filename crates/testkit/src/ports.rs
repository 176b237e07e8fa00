//! Free loopback ports.
//!
//! [`unique_port`] is what cluster code uses: it never hands out the same port twice in
//! one test binary, and it prefers ports *below* the kernel's ephemeral range. Ports in
//! the ephemeral range are also what the kernel gives to outgoing connections, so a
//! killed node's old port could be taken by some client socket before the node is
//! restarted on it; ports outside that range are only ever taken by an explicit bind.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port [`unique_port`] considers; below it live well-known and registered services.
const LOWEST_PORT: u16 = 20_000;
/// Used when `/proc/sys/net/ipv4/ip_local_port_range` cannot be read (Linux's default).
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// How many kernel-chosen ports to try before giving up, when the preferred range is full.
const FALLBACK_ATTEMPTS: usize = 200;

/// Returns a port that was free on `ip` a moment ago: binds `ip:0`, reads the port the
/// kernel chose and releases it. Another process may take it before it is used again;
/// within one test binary prefer [`unique_port`], which never repeats itself.
pub fn free_port(ip: IpAddr) -> io::Result<u16> {
    let listener = TcpListener::bind((ip, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Returns a port free on `ip` that no earlier call in this process has returned (for
/// any IP), so two nodes of one test binary never race for the same port.
///
/// Ports come from below the kernel's ephemeral range when it leaves room (see the
/// module documentation), starting at an offset derived from the process id so that
/// concurrent test binaries rarely probe the same ports; otherwise from [`free_port`].
pub fn unique_port(ip: IpAddr) -> io::Result<u16> {
    let mut handed_out = handed_out()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let (low, high) = preferred_range();
    if high > low {
        let span = usize::from(high - low);
        for _ in 0..span {
            let offset = cursor().fetch_add(1, Ordering::Relaxed) % span;
            let Ok(offset) = u16::try_from(offset) else {
                continue;
            };
            let port = low + offset;
            if !handed_out.contains(&port) && TcpListener::bind((ip, port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }

    for _ in 0..FALLBACK_ATTEMPTS {
        let port = free_port(ip)?;
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no free port left on {ip} that this process has not already handed out"),
    ))
}

/// Every port [`unique_port`] has returned in this process.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    HANDED_OUT.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Where the next probe in the preferred range starts; seeded per process.
fn cursor() -> &'static AtomicUsize {
    static CURSOR: OnceLock<AtomicUsize> = OnceLock::new();
    CURSOR.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // Spread concurrent test binaries over the range; 7919 is prime, so nearby pids land far apart.
        let seed = (std::process::id() as usize)
            .wrapping_mul(7919)
            .wrapping_add(nanos as usize);
        AtomicUsize::new(seed)
    })
}

/// `[low, high)`: the ports below the ephemeral range that [`unique_port`] prefers.
fn preferred_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW);
    (LOWEST_PORT, ephemeral_low.max(LOWEST_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn free_port_returns_a_bindable_port() {
        let port = free_port(LOCALHOST).unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((LOCALHOST, port)).unwrap();
    }

    #[test]
    fn unique_port_never_repeats_across_ips() {
        let mut seen = HashSet::new();
        for i in 0..200u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i % 3));
            let port = unique_port(ip).unwrap();
            assert!(seen.insert(port), "port {port} handed out twice");
            TcpListener::bind((ip, port)).unwrap();
        }
    }

    #[test]
    fn unique_port_avoids_the_ephemeral_range_when_it_can() {
        let (low, high) = preferred_range();
        if high > low {
            let port = unique_port(LOCALHOST).unwrap();
            assert!((low..high).contains(&port), "{port} not in [{low}, {high})");
        }
    }
}
