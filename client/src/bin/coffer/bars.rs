//! Progress bars (indicatif) for transfers; hidden when stderr is not a
//! terminal or output is quiet.

use coffer_client::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A transfer's progress bar, labelled with the file's name.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(label: &str, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            // Draws nothing when stderr is not a terminal.
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Bar(bar)
    }

    pub fn done(&self) {
        self.0.finish_and_clear();
    }

    /// Prints `line` above the bar (or plainly, with no bar drawn).
    pub fn println(&self, line: &str) {
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
}

impl Observer for Bar {
    fn start(&self, bytes: u64) {
        self.0.set_length(bytes);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
