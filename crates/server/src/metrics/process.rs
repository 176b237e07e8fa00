//! The standard `process_*` metrics (what Prometheus client libraries export and etcd
//! dashboards chart), read from Linux's `/proc/self` at scrape time. Elsewhere, or when a
//! file cannot be read, the affected metrics keep their last value.

use prometheus::core::Collector;
use prometheus::{Counter, Gauge, IntGauge, Opts};

/// Kernel clock ticks per second as `/proc` reports CPU times (`USER_HZ`, which the
/// kernel fixes at 100 in its user-space ABI on every architecture Linux supports today).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process gauges and the CPU counter.
#[derive(Debug, Clone)]
pub(crate) struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_memory: IntGauge,
    virtual_memory: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start_time: Gauge,
}

/// One reading of `/proc/self`.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    cpu_seconds: Option<f64>,
    start_ticks: Option<u64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    boot_time: Option<f64>,
}

impl ProcessMetrics {
    pub(crate) fn new() -> prometheus::Result<ProcessMetrics> {
        Ok(ProcessMetrics {
            cpu_seconds: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))?,
            resident_memory: IntGauge::with_opts(Opts::new(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ))?,
            virtual_memory: IntGauge::with_opts(Opts::new(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ))?,
            open_fds: IntGauge::with_opts(Opts::new("process_open_fds", "Number of open file descriptors."))?,
            max_fds: IntGauge::with_opts(Opts::new(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ))?,
            start_time: Gauge::with_opts(Opts::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ))?,
        })
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.cpu_seconds.clone()),
            Box::new(self.resident_memory.clone()),
            Box::new(self.virtual_memory.clone()),
            Box::new(self.open_fds.clone()),
            Box::new(self.max_fds.clone()),
            Box::new(self.start_time.clone()),
        ]
    }

    /// Reads `/proc/self` (blocking file reads: call off the async runtime).
    pub(crate) fn refresh(&self) {
        let reading = read_proc();
        if let Some(cpu) = reading.cpu_seconds {
            // A counter only moves forward; /proc's total never goes back.
            let delta = cpu - self.cpu_seconds.get();
            if delta > 0.0 {
                self.cpu_seconds.inc_by(delta);
            }
        }
        if let Some(bytes) = reading.resident_bytes {
            self.resident_memory.set(bytes);
        }
        if let Some(bytes) = reading.virtual_bytes {
            self.virtual_memory.set(bytes);
        }
        if let Some(fds) = reading.open_fds {
            self.open_fds.set(fds);
        }
        if let Some(fds) = reading.max_fds {
            self.max_fds.set(fds);
        }
        if let (Some(boot), Some(ticks)) = (reading.boot_time, reading.start_ticks) {
            self.start_time.set(boot + ticks as f64 / TICKS_PER_SECOND);
        }
    }
}

fn read_proc() -> Reading {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut reading = Reading::default();
    if let Some(stat) = read("/proc/self/stat") {
        parse_stat(&stat, &mut reading);
    }
    if let Some(status) = read("/proc/self/status") {
        parse_status(&status, &mut reading);
    }
    if let Some(limits) = read("/proc/self/limits") {
        reading.max_fds = parse_max_open_files(&limits);
    }
    if let Some(system) = read("/proc/stat") {
        reading.boot_time = system
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|value| value.trim().parse::<f64>().ok());
    }
    reading.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| i64::try_from(entries.count()).unwrap_or(i64::MAX));
    reading
}

/// CPU time and start time from `/proc/self/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn parse_stat(stat: &str, reading: &mut Reading) {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return;
    };
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        reading.cpu_seconds = Some((utime + stime) as f64 / TICKS_PER_SECOND);
    }
    reading.start_ticks = field(22);
}

/// Resident and virtual memory from `/proc/self/status` (`VmRSS`, `VmSize`, in kB).
fn parse_status(status: &str, reading: &mut Reading) {
    let kib = |value: &str| {
        value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<i64>()
            .ok()
            .map(|k| k.saturating_mul(1024))
    };
    for line in status.lines() {
        if let Some(value) = line.strip_prefix("VmRSS:") {
            reading.resident_bytes = kib(value);
        } else if let Some(value) = line.strip_prefix("VmSize:") {
            reading.virtual_bytes = kib(value);
        }
    }
}

/// The soft limit of open files from `/proc/self/limits` (`unlimited` is left out).
fn parse_max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse::<i64>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (conc (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 1000000 2000 18446744073709551615";
        let mut reading = Reading::default();
        parse_stat(stat, &mut reading);
        assert_eq!(reading.cpu_seconds, Some(3.0));
        assert_eq!(reading.start_ticks, Some(123456));
    }

    #[test]
    fn memory_and_fd_limit_parse_from_proc_text() {
        let mut reading = Reading::default();
        parse_status(
            "Name:\tconclave\nVmSize:\t  2048 kB\nVmRSS:\t   512 kB\n",
            &mut reading,
        );
        assert_eq!(reading.resident_bytes, Some(512 * 1024));
        assert_eq!(reading.virtual_bytes, Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files("Max open files            unlimited            unlimited            files"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_alive() {
        let metrics = ProcessMetrics::new().unwrap();
        metrics.refresh();
        assert!(metrics.resident_memory.get() > 0);
        assert!(metrics.open_fds.get() > 0);
        assert!(metrics.start_time.get() > 1.0e9);
    }
}
