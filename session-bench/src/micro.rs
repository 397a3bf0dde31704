//! Turns divan's tree output into markdown rows for `MICRO.md`.

use anyhow::{bail, Context, Result};

/// One benchmark's timings, in nanoseconds per iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroRow {
    /// The bench file (`ids`, `codec`, `store`).
    pub group: String,
    /// The path below the group, e.g. `load/1000000`.
    pub name: String,
    /// Fastest sample, ns per iteration.
    pub fastest_ns: f64,
    /// Median sample, ns per iteration.
    pub median_ns: f64,
    /// Mean over samples, ns per iteration.
    pub mean_ns: f64,
    /// Number of samples.
    pub samples: u64,
    /// Total iterations over all samples.
    pub iters: u64,
}

/// Parses the standard output of one or more divan bench binaries run with
/// `--color never`. Lines without divan's `│` separator (cargo's, blank
/// lines, `Timer precision`) are skipped.
///
/// # Errors
/// When a table row does not have divan's six columns or a time does not parse.
pub fn parse_divan(text: &str) -> Result<Vec<MicroRow>> {
    let mut rows = Vec::new();
    let mut group = String::new();
    let mut path: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.contains('│') {
            continue;
        }
        // The tree prefix (`├─ `, `│  `, `╰─ `, `   `: three characters per
        // level) comes first; the columns after it are separated by `│`.
        let name_start = line
            .find(|c: char| !matches!(c, '│' | '├' | '╰' | '─' | ' '))
            .with_context(|| format!("a divan row without a name: {line:?}"))?;
        let depth = line[..name_start].chars().count() / 3;
        let cells: Vec<&str> = line[name_start..].split('│').map(str::trim).collect();
        if cells.len() != 6 {
            bail!("a divan row with {} columns: {line:?}", cells.len());
        }
        let first = cells[0];
        if cells[1] == "slowest" {
            // The header: `<bench file>   fastest`.
            group = first
                .split_whitespace()
                .next()
                .context("a divan header without a name")?
                .to_owned();
            path.clear();
            continue;
        }
        let mut rest = first.split_whitespace();
        let name = rest.next().unwrap_or_default().to_owned();
        path.truncate(depth.saturating_sub(1));
        path.push(name);
        let fastest: Vec<&str> = rest.collect();
        if fastest.is_empty() {
            continue; // an inner node: a module or a benchmark with arguments
        }
        rows.push(MicroRow {
            group: group.clone(),
            name: path.join("/"),
            fastest_ns: parse_time(&fastest.join(" "))?,
            median_ns: parse_time(cells[2])?,
            mean_ns: parse_time(cells[3])?,
            samples: cells[4].parse().context("samples")?,
            iters: cells[5].parse().context("iterations")?,
        });
    }
    Ok(rows)
}

/// `"1.807 µs"` → 1807.0 (nanoseconds).
///
/// # Errors
/// When the number or the unit is not one divan prints.
pub fn parse_time(text: &str) -> Result<f64> {
    let (number, unit) = text
        .trim()
        .split_once(' ')
        .with_context(|| format!("a time without a unit: {text:?}"))?;
    let value: f64 = number
        .parse()
        .with_context(|| format!("a time: {text:?}"))?;
    let scale = match unit {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        other => bail!("an unknown time unit {other:?} in {text:?}"),
    };
    Ok(value * scale)
}

/// A time in ns for a table: one decimal below 100 ns, whole ns above.
#[must_use]
pub fn fmt_ns(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

/// The markdown table of `rows`, one table row per benchmark.
#[must_use]
pub fn render_table(rows: &[MicroRow]) -> String {
    let mut out = String::from(
        "| benchmark | median ns/op | mean ns/op | fastest ns/op | samples × iters/sample |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let per_sample = row.iters.checked_div(row.samples).unwrap_or(row.iters);
        out.push_str(&format!(
            "| `{}/{}` | {} | {} | {} | {} × {} |\n",
            row.group,
            row.name,
            fmt_ns(row.median_ns),
            fmt_ns(row.mean_ns),
            fmt_ns(row.fastest_ns),
            row.samples,
            per_sample
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
     Running benches/store.rs (target/release/deps/store-9f37b7689afb6662)
Timer precision: 20 ns
store                  fastest       │ slowest       │ median        │ mean          │ samples │ iters
├─ load                              │               │               │               │         │
│  ├─ 1000             754.1 ns      │ 1.122 µs      │ 772.9 ns      │ 796.7 ns      │ 100     │ 100000
│  ╰─ 1000000          1.712 µs      │ 4.09 µs       │ 1.807 µs      │ 1.844 µs      │ 100     │ 100000
╰─ request_cycle                     │               │               │               │         │
   ╰─ untouched        317.6 ns      │ 463.2 ns      │ 325 ns        │ 334.4 ns      │ 100     │ 100000

Timer precision: 20 ns
ids              fastest       │ slowest       │ median        │ mean          │ samples │ iters
╰─ parse                       │               │               │               │         │
   ╰─ good_uuid  31.94 ns      │ 68.88 ns      │ 33.5 ns       │ 36.84 ns      │ 100     │ 3200
";

    #[test]
    fn parses_nested_rows_with_units() {
        let rows = parse_divan(SAMPLE).unwrap();
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("{}/{}", r.group, r.name))
            .collect();
        assert_eq!(
            names,
            [
                "store/load/1000",
                "store/load/1000000",
                "store/request_cycle/untouched",
                "ids/parse/good_uuid"
            ]
        );
        assert!((rows[1].median_ns - 1807.0).abs() < 1e-6);
        assert!((rows[1].fastest_ns - 1712.0).abs() < 1e-6);
        assert_eq!((rows[3].samples, rows[3].iters), (100, 3200));
    }

    #[test]
    fn renders_ns_per_op() {
        let rows = parse_divan(SAMPLE).unwrap();
        let table = render_table(&rows);
        assert!(
            table.contains("| `store/load/1000000` | 1807 | 1844 | 1712 | 100 × 1000 |"),
            "{table}"
        );
        assert!(table.contains("| `ids/parse/good_uuid` | 33.5 | 36.8 | 31.9 | 100 × 32 |"));
    }

    #[test]
    fn rejects_unknown_units() {
        assert!(parse_time("3 fortnights").is_err());
        assert_eq!(parse_time("2 ms").unwrap(), 2e6);
    }
}
