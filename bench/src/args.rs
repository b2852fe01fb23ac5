//! `--name value` arguments and NDJSON output of the sweep binaries.

use std::io::Write;

/// The command line, checked against the names a binary accepts.
pub struct Args(Vec<String>);

impl Args {
    /// This process's arguments; an unknown `--name` is an error naming the known ones.
    pub fn from_env(known: &[&str]) -> Result<Args, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        for a in args.iter().step_by(2) {
            if !known.contains(&a.as_str()) {
                return Err(format!("unknown argument `{a}` (expected one of {})", known.join(" ")));
            }
        }
        Ok(Args(args))
    }

    /// The value after `name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).cloned()
    }

    /// The value after `name` parsed, or `default` when absent.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name).map_or(Ok(default), |s| s.parse().map_err(|e| format!("{name} {s}: {e}")))
    }
}

/// Where a sweep writes its NDJSON lines: a file, or stdout.
pub struct Ndjson(Box<dyn Write>);

impl Ndjson {
    /// Creates `path`, or writes to stdout when `None`.
    pub fn create(path: Option<String>) -> Result<Ndjson, String> {
        Ok(Ndjson(match path {
            Some(p) => Box::new(std::fs::File::create(&p).map_err(|e| format!("{p}: {e}"))?),
            None => Box::new(std::io::stdout()),
        }))
    }

    /// Writes one line. Flushed per line so an interrupted sweep keeps what it measured.
    pub fn line(&mut self, v: &serde_json::Value) -> Result<(), String> {
        writeln!(self.0, "{v}").and_then(|()| self.0.flush()).map_err(|e| format!("write output: {e}"))
    }
}
