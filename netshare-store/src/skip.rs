//! Saying that a test skipped. `cargo test` hides a passing test's output, so a test that
//! skips for want of a tool or a file would pass unseen. [`note_skip`] also appends the reason
//! to the file `NETSHARE_SKIP_LOG` names, and CI prints that file after the test run.

use std::io::Write;

/// Reports a skipped test: on stderr, and appended as one line to `$NETSHARE_SKIP_LOG` when set.
pub fn note_skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    append(std::env::var_os("NETSHARE_SKIP_LOG").as_deref(), &line);
}

fn append(path: Option<&std::ffi::OsStr>, line: &str) {
    if let Some(path) = path {
        // One write per line with O_APPEND, so lines from parallel tests do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("could not append to {}: {e}", path.to_string_lossy());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_appended_one_line_each_to_the_named_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("skips.log");
        append(Some(log.as_os_str()), "SKIPPED a: no tool");
        append(Some(log.as_os_str()), "SKIPPED b: no file");
        append(None, "SKIPPED c: nowhere");
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "SKIPPED a: no tool\nSKIPPED b: no file\n"
        );
    }
}
