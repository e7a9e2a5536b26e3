//! Each task's command line: the flags it knows, `--help` with its own usage, and a clear
//! refusal of anything else (a mistyped `--mirorr URL` must not fall back to the default
//! host silently).

use anyhow::{bail, Result};

/// What a task accepts: flags that take a value, and how many positional arguments.
#[derive(Debug)]
pub struct TaskSpec {
    pub name: &'static str,
    pub usage: &'static str,
    pub value_flags: &'static [&'static str],
    pub switches: &'static [&'static str],
    pub max_positional: usize,
}

/// A task's parsed arguments.
#[derive(Debug, Default)]
pub struct TaskArgs {
    values: Vec<(String, String)>,
    switches: Vec<String>,
    pub positional: Vec<String>,
    /// Everything after a bare `--`, passed on untouched.
    pub passthrough: Vec<String>,
}

impl TaskArgs {
    /// The value of `--flag VALUE` (or `--flag=VALUE`); the last one wins.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `--switch` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

impl TaskSpec {
    /// Parses `args`; `Ok(None)` means `--help` was asked for (the usage is printed).
    pub fn parse(&self, args: &[String]) -> Result<Option<TaskArgs>> {
        let mut out = TaskArgs::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                out.passthrough = it.cloned().collect();
                break;
            }
            if arg == "--help" || arg == "-h" {
                println!("{}", self.usage);
                return Ok(None);
            }
            if let Some(flag) = arg.strip_prefix("--").map(|_| arg.as_str()) {
                let (flag, inline) = match flag.split_once('=') {
                    Some((f, v)) => (f, Some(v.to_string())),
                    None => (flag, None),
                };
                if self.switches.contains(&flag) && inline.is_none() {
                    out.switches.push(flag.to_string());
                } else if self.value_flags.contains(&flag) {
                    let value = match inline.or_else(|| it.next().cloned()) {
                        Some(v) if !v.starts_with("--") => v,
                        _ => bail!("{} {flag}: expected a value\n{}", self.name, self.usage),
                    };
                    out.values.push((flag.to_string(), value));
                } else {
                    bail!("{}: unknown option {arg:?}\n{}", self.name, self.usage);
                }
            } else if arg.starts_with('-') && arg.len() > 1 {
                bail!("{}: unknown option {arg:?}\n{}", self.name, self.usage);
            } else if out.positional.len() < self.max_positional {
                out.positional.push(arg.clone());
            } else {
                bail!("{}: unexpected argument {arg:?}\n{}", self.name, self.usage);
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FETCH: TaskSpec = TaskSpec {
        name: "fetch-data",
        usage: "usage: cargo xtask fetch-data [--dataset NAME] [--mirror URL]",
        value_flags: &["--dataset", "--mirror"],
        switches: &[],
        max_positional: 0,
    };

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_flags_take_values_in_both_spellings() {
        let a = FETCH
            .parse(&args(&["--dataset", "cifar10", "--mirror=http://m"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.value("--dataset"), Some("cifar10"));
        assert_eq!(a.value("--mirror"), Some("http://m"));
    }

    #[test]
    fn help_is_answered_not_acted_on() {
        assert!(FETCH.parse(&args(&["--help"])).unwrap().is_none());
        assert!(FETCH.parse(&args(&["-h"])).unwrap().is_none());
    }

    #[test]
    fn unknown_flags_and_stray_arguments_are_refused_with_the_usage() {
        for bad in [
            &["--mirorr", "http://m"][..],
            &["--bogus"],
            &["cifar10"],
            &["--dataset"],
            &["--dataset", "--mirror"],
        ] {
            let e = FETCH.parse(&args(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with("fetch-data") && e.contains("usage:"),
                "{bad:?}: {e}"
            );
        }
        let e = FETCH
            .parse(&args(&["--mirorr", "x"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"--mirorr\""), "{e}");
    }

    #[test]
    fn everything_after_a_double_dash_passes_through() {
        let spec = TaskSpec {
            switches: &["--numeric"],
            ..FETCH
        };
        let a = spec
            .parse(&args(&["--numeric", "--", "--bogus", "x"]))
            .unwrap()
            .unwrap();
        assert!(a.switch("--numeric"));
        assert_eq!(a.passthrough, ["--bogus", "x"]);
    }
}
