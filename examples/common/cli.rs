//! The argument rules the command-line examples share (`bench`, `train`, `validate`; the study's parser lives in
//! `actgpu::study::options`, with the same rules): an option that takes a value is given once, and its value is
//! not itself an option. Each error message ends with the command's usage.
//!
//! Included by each example as `#[path = "common/cli.rs"] mod cli;`.

use std::collections::HashSet;

/// `Err` when `flag` is already in `seen` (and records it): given twice, its last value would silently win.
pub fn once(seen: &mut HashSet<String>, flag: &str, usage: &str) -> Result<(), String> {
    if seen.insert(flag.to_string()) {
        Ok(())
    } else {
        Err(format!(
            "{flag} is given twice: give it once (its last value would silently win); {usage}"
        ))
    }
}

/// `flag`'s value, `next`: `Err` where there is none, or where it is itself an option (`--sizes --json`), which
/// means the value was forgotten.
pub fn value<S: AsRef<str>>(flag: &str, next: Option<S>, usage: &str) -> Result<S, String> {
    match next {
        Some(v) if v.as_ref().starts_with("--") => Err(format!(
            "{flag} needs a value, not the option {}; {usage}",
            v.as_ref()
        )),
        Some(v) => Ok(v),
        None => Err(format!("{flag} needs a value; {usage}")),
    }
}
