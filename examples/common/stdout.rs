//! Standard output for the command-line examples without `println!`'s panic when the reader has gone (`train |
//! head -1`): [`say!`] drops the line and every later one (another write error ends the process with status
//! 1), for a command whose work goes on (a study writing its
//! `--out` files, `validate` reaching its verdict and exit status); [`emit`] ends the process quietly with
//! status 0, as a command-line tool does on a closed pipe, for one whose output is all it makes.
//!
//! Included by each example as `#[path = "common/stdout.rs"] mod stdout;` (cargo builds every `examples/*.rs`
//! as an example of its own, so shared code lives in a folder).

#![allow(dead_code, unused_macros, unused_imports)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to standard output has failed (a closed pipe): later lines are not even formatted.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// `println!` that never panics: a line that cannot be written (standard output closed) is dropped, and so is
/// every later one.
macro_rules! say {
    () => { $crate::stdout::say_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::stdout::say_line(format_args!($($arg)*)) };
}
pub(crate) use say;

/// `eprintln!` that never panics: a message standard error cannot take is dropped.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use tell;

/// The line of [`say!`], and its newline. Only a closed pipe is dropped quietly: any other write error (a full
/// disk under `validate --json > file`) ends the process with status 1, as a truncated report must not pass for
/// a whole one.
pub fn say_line(line: std::fmt::Arguments) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_GONE.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "writing to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes `text` to standard output at once. When the reader has gone, ends the process quietly with status 0;
/// any other write error ends it with status 1, naming `command`.
pub fn emit(command: &str, text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(
            std::io::stderr(),
            "{command}: writing to standard output: {e}"
        );
        std::process::exit(1);
    }
}
