//! The served-feature log (`--log-served`): one JSON line per row served, so a training set can
//! be built from exactly the values a model saw (as Fennel and Chronon log theirs).
//!
//! Requests hand their line to a writer thread through a bounded channel and wait for room in
//! it, so a slow disk slows the API rather than losing lines. The writer flushes whenever the
//! channel is empty and syncs the file when the server stops.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::error::ServeError;
use crate::metrics::Metrics;

/// Lines waiting for the writer; beyond this, requests wait.
const QUEUE: usize = 8192;

enum Message {
    Line(String),
    Stop,
}

/// A handle requests write lines through.
#[derive(Clone)]
pub struct LogSender {
    tx: mpsc::Sender<Message>,
    metrics: Metrics,
}

impl LogSender {
    /// Queues one line (without its newline). A line sent after the log was closed (by a
    /// request that outlived the shutdown's drain) is counted as an error.
    pub async fn send(&self, line: String) {
        if self.tx.send(Message::Line(line)).await.is_err() {
            self.metrics.log_error();
        }
    }
}

/// The writer thread.
pub struct ServedLog {
    sender: LogSender,
    thread: JoinHandle<()>,
}

impl ServedLog {
    /// Opens `path` for appending (created if missing) and starts the writer.
    pub fn open(path: &Path, metrics: Metrics) -> Result<ServedLog, ServeError> {
        let error = |source| ServeError::ServedLog {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("dtc-served-log".into())
            .spawn(move || write_lines(file, rx, &writer_metrics))
            .map_err(error)?;
        Ok(ServedLog {
            sender: LogSender { tx, metrics },
            thread,
        })
    }

    pub fn sender(&self) -> LogSender {
        self.sender.clone()
    }

    /// Writes what was queued, syncs the file and stops the writer.
    pub async fn close(self) {
        if self.sender.tx.send(Message::Stop).await.is_err() {
            self.sender.metrics.log_error();
        }
        let thread = self.thread;
        // The join waits for the file's sync: off the async workers.
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            self.sender.metrics.log_error();
        }
    }
}

fn write_lines(file: File, mut rx: mpsc::Receiver<Message>, metrics: &Metrics) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Line(mut line) => {
                line.push('\n');
                if out.write_all(line.as_bytes()).is_err() {
                    metrics.log_error();
                }
                if rx.is_empty() && out.flush().is_err() {
                    metrics.log_error();
                }
            }
            Message::Stop => break,
        }
    }
    let synced = out
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all());
    if synced.is_err() {
        metrics.log_error();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_appended_and_synced_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("served.jsonl");
        std::fs::write(&path, "{\"earlier\":1}\n").unwrap();
        let log = ServedLog::open(&path, Metrics::new()).unwrap();
        let sender = log.sender();
        for i in 0..3 {
            sender.send(format!("{{\"n\":{i}}}")).await;
        }
        log.close().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"earlier\":1}\n{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
        // After the close, a line is not written but counted.
        let metrics = sender.metrics.clone();
        sender.send("late".into()).await;
        assert!(
            metrics
                .render()
                .contains("dtc_serve_served_log_errors_total 1")
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/served.jsonl");
        assert!(matches!(
            ServedLog::open(&missing, Metrics::new()),
            Err(ServeError::ServedLog { .. })
        ));
    }
}
