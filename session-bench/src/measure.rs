//! Parsers and statistics used by `bench-run`, kept in the library so they
//! are unit-tested.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

/// The `wrk` Lua script: sends `BENCH_COOKIE` (when set and non-empty) as the
/// `Cookie` header and prints one machine-readable summary line at the end.
pub const WRK_SCRIPT: &str = r#"-- session-bench: cookie(s) + summary line
local cookie = os.getenv("BENCH_COOKIE")
if cookie ~= nil and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
-- BENCH_COOKIE_FILE: a file of Cookie header values, one a line; each
-- request picks one at random (the scale run: requests spread over N live
-- sessions). Read in init(), which only the benchmark threads run.
local cookie_file = os.getenv("BENCH_COOKIE_FILE")
if cookie_file ~= nil and cookie_file ~= "" then
  local list = {}
  init = function(args)
    for line in io.lines(cookie_file) do list[#list + 1] = line end
    math.randomseed(os.time())
  end
  request = function()
    wrk.headers["Cookie"] = list[math.random(#list)]
    return wrk.format()
  end
end
-- BENCH_COOKIES: several `name=value` cookies separated by `|`, used in
-- turn, one per request (one session per connection, roughly).
local many = os.getenv("BENCH_COOKIES")
if many ~= nil and many ~= "" and (cookie_file == nil or cookie_file == "") then
  local list = {}
  for c in string.gmatch(many, "[^|]+") do list[#list + 1] = c end
  local next_one = 0
  request = function()
    next_one = next_one % #list + 1
    wrk.headers["Cookie"] = list[next_one]
    return wrk.format()
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    math.floor(latency:percentile(50.0)), math.floor(latency:percentile(99.0)),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

/// One `wrk` run as reported by [`WRK_SCRIPT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Wall time of the run in microseconds.
    pub duration_us: u64,
    /// Median latency in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency in microseconds.
    pub p99_us: u64,
    /// Socket errors (connect + read + write + timeout).
    pub socket_errors: u64,
    /// Responses with a status outside 2xx/3xx.
    pub status_errors: u64,
}

impl WrkResult {
    /// Requests per second over the run.
    pub fn requests_per_sec(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 * 1e6 / self.duration_us as f64
        }
    }
}

/// Finds the `BENCH-RESULT` line in `wrk`'s standard output.
pub fn parse_wrk_output(stdout: &str) -> Result<WrkResult> {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("BENCH-RESULT "))
        .context("wrk printed no BENCH-RESULT line")?;
    let mut fields = BTreeMap::new();
    for pair in line.split_whitespace().skip(1) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("malformed field {pair:?} in {line:?}"))?;
        let value: u64 = value
            .parse()
            .with_context(|| format!("non-numeric field {pair:?} in {line:?}"))?;
        fields.insert(key, value);
    }
    let get = |key: &str| -> Result<u64> {
        fields
            .get(key)
            .copied()
            .with_context(|| format!("field {key} missing in {line:?}"))
    };
    Ok(WrkResult {
        requests: get("requests")?,
        duration_us: get("duration_us")?,
        p50_us: get("p50_us")?,
        p99_us: get("p99_us")?,
        socket_errors: get("connect")? + get("read")? + get("write")? + get("timeout")?,
        status_errors: get("status")?,
    })
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
pub fn parse_proc_stat_cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces,
    // so count fields from the last ')'.
    let after_comm = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    if fields.len() < 13 {
        bail!(
            "/proc/<pid>/stat has only {} fields after comm",
            fields.len()
        );
    }
    let utime: u64 = fields[11].parse().context("parsing utime")?;
    let stime: u64 = fields[12].parse().context("parsing stime")?;
    Ok(utime + stime)
}

/// One CPU's counters from `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Ticks spent in processes or stolen by the hypervisor (user, nice,
    /// system, steal). Interrupt and softirq time is left out: on loopback
    /// much of it is the server's own network traffic.
    pub busy: u64,
    /// Ticks the hypervisor gave to someone else.
    pub steal: u64,
    /// All ticks.
    pub total: u64,
}

/// The `cpuN` line of `/proc/stat`.
pub fn parse_proc_stat_cpu(proc_stat: &str, cpu: u32) -> Result<CpuTimes> {
    let label = format!("cpu{cpu}");
    let line = proc_stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))
        .with_context(|| format!("no {label} line in /proc/stat"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| {
            v.parse()
                .with_context(|| format!("bad {label} value {v:?}"))
        })
        .collect::<Result<_>>()?;
    if values.len() < 8 {
        bail!("{label} line has only {} values", values.len());
    }
    // user nice system idle iowait irq softirq steal
    let total: u64 = values.iter().sum();
    Ok(CpuTimes {
        busy: values[0] + values[1] + values[2] + values[7],
        steal: values[7],
        total,
    })
}

/// What Redis' `INFO cpu commandstats` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisInfo {
    /// Calls per command (`get`, `set`, `client|id`, ...).
    pub calls: BTreeMap<String, u64>,
    /// used_cpu_user + used_cpu_sys, in seconds.
    pub cpu_seconds: f64,
}

impl RedisInfo {
    /// Parses the payload of an `INFO` reply.
    pub fn parse(text: &str) -> Result<RedisInfo> {
        let mut info = RedisInfo::default();
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                let (name, stats) = rest
                    .split_once(':')
                    .with_context(|| format!("malformed commandstats line {line:?}"))?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .with_context(|| format!("no calls= in {line:?}"))?
                    .parse()
                    .with_context(|| format!("bad calls= in {line:?}"))?;
                info.calls.insert(name.to_owned(), calls);
            } else if let Some(value) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                let seconds: f64 = value
                    .parse()
                    .with_context(|| format!("bad cpu line {line:?}"))?;
                info.cpu_seconds += seconds;
            }
        }
        Ok(info)
    }

    /// Adds `other`'s calls and CPU time to these (a cluster's nodes).
    pub fn add(&mut self, other: &RedisInfo) {
        for (name, calls) in &other.calls {
            *self.calls.entry(name.clone()).or_default() += calls;
        }
        self.cpu_seconds += other.cpu_seconds;
    }

    /// Calls made between `before` and `self`, without the `INFO` calls the
    /// benchmark itself made.
    pub fn calls_since(&self, before: &RedisInfo) -> BTreeMap<String, u64> {
        self.calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .filter_map(|(name, &after)| {
                let delta = after.saturating_sub(before.calls.get(name).copied().unwrap_or(0));
                (delta > 0).then(|| (name.clone(), delta))
            })
            .collect()
    }
}

/// Commands seen by Redis' `MONITOR` while a known number of requests ran.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    /// Requests made.
    pub requests: u64,
    /// Commands sent by clients, per (upper-case) name.
    pub client: BTreeMap<String, u64>,
    /// Commands run inside Lua scripts, per (upper-case) name.
    pub script: BTreeMap<String, u64>,
}

impl Census {
    /// Counts one `MONITOR` line such as
    /// `+1700000000.123456 [0 127.0.0.1:5000] "GET" "key"` (a client) or
    /// `+1700000000.123456 [0 lua] "hset" "key" "f" "v"` (a script). Lines
    /// that are not command lines are ignored; returns whether it counted.
    pub fn record_monitor_line(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix('+') else {
            return false;
        };
        let (Some(open), Some(close)) = (rest.find('['), rest.find("] ")) else {
            return false;
        };
        if close < open {
            return false;
        }
        let source = &rest[open + 1..close];
        let Some(name) = rest[close + 2..]
            .strip_prefix('"')
            .and_then(|args| args.split('"').next())
            .filter(|name| !name.is_empty())
        else {
            return false;
        };
        let map = if source.ends_with(" lua") {
            &mut self.script
        } else {
            &mut self.client
        };
        *map.entry(name.to_ascii_uppercase()).or_default() += 1;
        true
    }
}

/// The median of `values` (mean of the two middle ones for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_summary_line() {
        let out = "Running 5s test @ http://127.0.0.1:1/counter\n  1 threads and 32 connections\n\
                   BENCH-RESULT requests=1000 duration_us=2000000 p50_us=310 p99_us=900 connect=0 read=1 write=0 status=2 timeout=3\n";
        let r = parse_wrk_output(out).unwrap();
        assert_eq!(r.requests, 1000);
        assert_eq!(r.p50_us, 310);
        assert_eq!(r.p99_us, 900);
        assert_eq!(r.socket_errors, 4);
        assert_eq!(r.status_errors, 2);
        assert!((r.requests_per_sec() - 500.0).abs() < 1e-9);
        assert!(parse_wrk_output("nothing here").is_err());
    }

    #[test]
    fn parses_proc_stat_with_spaces_in_comm() {
        let stat =
            "1234 (bench server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 0 0";
        assert_eq!(parse_proc_stat_cpu_ticks(stat).unwrap(), 300);
        assert!(parse_proc_stat_cpu_ticks("1 (x) S 1").is_err());
    }

    #[test]
    fn parses_one_cpu_of_proc_stat() {
        let text =
            "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 1 4 50 2 1 1 3 0 0\ncpu1 5 0 6 50 0 0 0 0 0 0\n";
        let cpu0 = parse_proc_stat_cpu(text, 0).unwrap();
        assert_eq!(cpu0.total, 67);
        assert_eq!(cpu0.busy, 13);
        assert_eq!(cpu0.steal, 3);
        assert!(parse_proc_stat_cpu(text, 7).is_err());
    }

    #[test]
    fn parses_redis_info_and_diffs_calls() {
        let before = RedisInfo::parse(
            "# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:0.5\r\n# Commandstats\r\n\
             cmdstat_get:calls=10,usec=1,usec_per_call=0.1,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=1,usec=1\r\n",
        )
        .unwrap();
        let after = RedisInfo::parse(
            "used_cpu_sys:2.0\r\nused_cpu_user:1.0\r\n\
             cmdstat_get:calls=30,usec=1\r\ncmdstat_set:calls=20,usec=1\r\n\
             cmdstat_client|id:calls=0,usec=0\r\ncmdstat_info:calls=2,usec=1\r\n",
        )
        .unwrap();
        assert!((before.cpu_seconds - 2.0).abs() < 1e-9);
        assert!((after.cpu_seconds - 3.0).abs() < 1e-9);
        let delta = after.calls_since(&before);
        assert_eq!(delta.get("get"), Some(&20));
        assert_eq!(delta.get("set"), Some(&20));
        assert_eq!(delta.get("info"), None);
        assert_eq!(delta.get("client|id"), None);

        let mut sum = before.clone();
        sum.add(&after);
        assert_eq!(sum.calls.get("get"), Some(&40));
        assert_eq!(sum.calls.get("set"), Some(&20));
        assert!((sum.cpu_seconds - 5.0).abs() < 1e-9);
    }

    #[test]
    fn counts_monitor_lines_by_source() {
        let mut census = Census::default();
        assert!(census
            .record_monitor_line(r#"+1700000000.1 [0 127.0.0.1:5000] "EVALSHA" "abc" "1" "k""#));
        assert!(census.record_monitor_line(r#"+1700000000.2 [0 lua] "hset" "k" "f" "v""#));
        assert!(census.record_monitor_line(r#"+1700000000.3 [0 lua] "pexpire" "k" "1000""#));
        assert!(census.record_monitor_line(r#"+1700000000.4 [0 127.0.0.1:5001] "get" "k""#));
        assert!(!census.record_monitor_line("+OK"));
        assert!(!census.record_monitor_line("-ERR nope"));
        assert_eq!(census.client.get("EVALSHA"), Some(&1));
        assert_eq!(census.client.get("GET"), Some(&1));
        assert_eq!(census.script.get("HSET"), Some(&1));
        assert_eq!(census.script.get("PEXPIRE"), Some(&1));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
