//! Fixed formatting of numbers, sizes, provenance and escaping, shared by every renderer so
//! that the same inputs always give the same bytes.

use crate::record::{Cache, Env, Record};

/// A value in its unit, with a precision that suits the unit (documented in docs/LAB.md).
pub(crate) fn value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    match unit {
        "count" | "bytes" => grouped(v, 0),
        "fraction" => fixed(v, 3),
        "GB/s" => fixed(v, 2),
        "x" => {
            let a = v.abs();
            if a >= 100.0 {
                grouped(v, 0)
            } else if a >= 10.0 {
                fixed(v, 1)
            } else if a >= 0.1 || a == 0.0 {
                fixed(v, 2)
            } else {
                sig3(v)
            }
        }
        _ => sig3(v),
    }
}

/// Three significant digits, at most, and never fewer than the integer digits.
pub(crate) fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let a = v.abs();
    if a >= 100.0 {
        grouped(v, 0)
    } else if a >= 10.0 {
        fixed(v, 1)
    } else if a >= 1.0 {
        fixed(v, 2)
    } else if a == 0.0 {
        "0".to_string()
    } else {
        // 2 - floor(log10(a)) decimals gives three significant digits; capped for tiny values.
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 9) as usize;
        fixed(v, decimals)
    }
}

/// `v` with `decimals` decimals; never `-0`.
pub(crate) fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// `v` with `decimals` decimals and thousands separators (`1,234,567.8`).
pub(crate) fn grouped(v: f64, decimals: usize) -> String {
    let s = fixed(v, decimals);
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s.as_str()),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(s.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// A short number for an axis label: up to 4 significant digits, trailing zeros trimmed.
pub(crate) fn axis(v: f64) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let a = v.abs();
    let s = if a >= 1000.0 {
        grouped(v, 0)
    } else if a == 0.0 {
        "0".to_string()
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 9) as usize;
        let s = fixed(v, decimals);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A byte count in binary units (`4 KiB`, `255.3 MiB`).
pub(crate) fn bytes(b: f64) -> String {
    if !b.is_finite() || b < 0.0 {
        return sig3(b);
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} B", grouped(v, 0))
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{} {}", fixed(v, 0), UNITS[u])
    } else {
        format!("{} {}", fixed(v, 1), UNITS[u])
    }
}

/// A duration in seconds, as a person would say it.
pub(crate) fn duration(s: f64) -> String {
    if !s.is_finite() {
        return non_finite(s);
    }
    if s < 60.0 {
        format!("{} s", fixed(s, 1))
    } else if s < 3600.0 {
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        let whole = s.round() as u64;
        format!("{} h {} min", whole / 3600, (whole % 3600) / 60)
    }
}

/// A parameter value: strings as they are, integers with separators from 1,000, sizes of
/// `*_bytes` parameters in binary units, null as `-`.
pub(crate) fn param(key: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if key.ends_with("bytes") || key == "record" {
                bytes(f)
            } else if let Some(i) = n.as_i64() {
                if i.abs() >= 1000 {
                    grouped(f, 0)
                } else {
                    i.to_string()
                }
            } else if let Some(u) = n.as_u64() {
                grouped(u as f64, 0)
            } else {
                sig3(f)
            }
        }
        other => other.to_string(),
    }
}

/// A record's parameter by key, formatted, or `-`.
pub(crate) fn rparam(r: &Record, key: &str) -> String {
    r.params.get(key).map(|v| param(key, v)).unwrap_or_else(|| "-".into())
}

/// A size parameter (e.g. the io experiment's `record`) as a sort key in bytes and a label:
/// numbers are bytes (labelled in binary units); strings such as `256B`, `4K`, `1MiB` are parsed
/// for the key and labelled as they are. Missing: `(0, "-")`.
pub(crate) fn size_param(r: &Record, key: &str) -> (u64, String) {
    match r.params.get(key) {
        Some(serde_json::Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(0.0);
            (v.max(0.0) as u64, bytes(v))
        }
        Some(serde_json::Value::String(s)) => (parse_size(s).unwrap_or(u64::MAX), s.clone()),
        Some(other) => (u64::MAX, other.to_string()),
        None => (0, "-".into()),
    }
}

/// `256B`, `4K`, `4KiB`, `1M`, `2 GiB` -> bytes.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((v * mult) as u64)
}

/// The cache state and residency range: `warm (resident 1.000)`, `cold (resident 0.000-0.013)`.
pub(crate) fn cache(c: &Cache) -> String {
    match (c.resident_min, c.resident_max) {
        (Some(lo), Some(hi)) if fixed(lo, 3) == fixed(hi, 3) => format!("{} (resident {})", c.state, fixed(lo, 3)),
        (Some(lo), Some(hi)) => format!("{} (resident {}-{})", c.state, fixed(lo, 3), fixed(hi, 3)),
        (Some(v), None) | (None, Some(v)) => format!("{} (resident {})", c.state, fixed(v, 3)),
        (None, None) => c.state.clone(),
    }
}

/// The CPU model without trademarks, frequencies and filler words, at most 32 characters.
pub(crate) fn short_cpu(model: &str) -> String {
    let cut = model.split('@').next().unwrap_or(model);
    let words: Vec<&str> = cut
        .split_whitespace()
        .map(|w| w.trim_end_matches("(R)").trim_end_matches("(r)").trim_end_matches("(TM)").trim_end_matches("(tm)"))
        .filter(|w| {
            let lw = w.to_ascii_lowercase();
            !w.is_empty()
                && lw != "cpu"
                && lw != "processor"
                && lw != "(r)"
                && lw != "(tm)"
                && !(lw.ends_with("-core") && lw[..lw.len() - 5].chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    let s = words.join(" ");
    let s = if s.is_empty() { "unknown CPU".to_string() } else { s };
    if s.chars().count() > 32 {
        s.chars().take(31).collect::<String>() + "…"
    } else {
        s
    }
}

/// The short git sha (7 characters, as in run ids), with `+dirty` for a dirty checkout.
pub(crate) fn short_sha(env: &Env) -> String {
    let sha: String = env.git_sha.chars().take(7).collect();
    let sha = if sha.is_empty() { "unknown".to_string() } else { sha };
    if env.git_dirty {
        format!("{sha}+dirty")
    } else {
        sha
    }
}

/// `16 CPUs Intel Xeon`: the machine in a few words.
pub(crate) fn machine_short(env: &Env) -> String {
    let cpus = if env.cpus == 1 { "1 CPU".to_string() } else { format!("{} CPUs", env.cpus) };
    format!("{cpus} {}", short_cpu(&env.cpu_model))
}

/// The provenance line of a plot: machine, git, mode and run.
pub(crate) fn provenance_line(env: &Env) -> String {
    format!("{} · git {} · {} run {}", machine_short(env), short_sha(env), env.mode, env.run)
}

/// Escapes a Markdown table cell (pipes, newlines).
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a relative URL (percent-encodes everything but unreserved
/// characters).
pub(crate) fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(value(1234.56, "ms"), "1,235");
        assert_eq!(value(12.345, "ms"), "12.3");
        assert_eq!(value(1.2345, "ms"), "1.23");
        assert_eq!(value(0.012345, "ms"), "0.0123");
        assert_eq!(value(0.9434, "fraction"), "0.943");
        assert_eq!(value(2.176, "x"), "2.18");
        assert_eq!(value(9.91, "GB/s"), "9.91");
        assert_eq!(value(975877.0, "count"), "975,877");
        assert_eq!(value(-0.0001, "fraction"), "0.000");
        assert_eq!(value(f64::NAN, "ms"), "NaN");
        assert_eq!(grouped(-1234567.0, 0), "-1,234,567");
        assert_eq!(axis(0.6000000000000001), "0.6");
        assert_eq!(axis(2500.0), "2,500");
        assert_eq!(axis(1234.5), "1,234");
        assert_eq!(axis(25000.0), "25,000");
        assert_eq!(bytes(4096.0), "4 KiB");
        assert_eq!(bytes(267_386_880.0), "255 MiB");
        assert_eq!(bytes(100.0), "100 B");
        assert_eq!(duration(192.4), "3 min 12 s");
        assert_eq!(parse_size("256B"), Some(256));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_size("big"), None);
    }

    #[test]
    fn cpu_names() {
        assert_eq!(short_cpu("Intel(R) Xeon(R) Processor"), "Intel Xeon");
        assert_eq!(short_cpu("AMD EPYC 7B13 64-Core Processor"), "AMD EPYC 7B13");
        assert_eq!(short_cpu("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz"), "Intel Core i7-8550U");
        assert_eq!(short_cpu(""), "unknown CPU");
    }

    #[test]
    fn escaping() {
        assert_eq!(html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(url_segment("2026-11-26-vm-abc"), "2026-11-26-vm-abc");
        assert_eq!(url_segment("a b/c"), "a%20b%2Fc");
    }
}
