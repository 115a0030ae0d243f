//! The kernel's own log file under `<data_dir>/logs/`: every tracing line is
//! appended to `tessera.log`, which is rotated by size (`tessera.log.1` is
//! the newest old one) so the directory never grows without bound.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub const LOG_FILE: &str = "tessera.log";

/// The log directory and its rotation policy.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

impl LogFiles {
    pub fn new(data_dir: &Path, max_bytes: u64, keep: u32) -> Self {
        LogFiles {
            dir: data_dir.join("logs"),
            max_bytes: max_bytes.max(4096),
            keep,
        }
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Every log file, newest first (`tessera.log`, `tessera.log.1`, ...).
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.current())
            .chain((1..=self.keep).map(|n| self.dir.join(format!("{LOG_FILE}.{n}"))))
            .filter(|p| p.is_file())
            .collect()
    }

    /// The last `max` lines over the current and the rotated files, oldest first.
    pub fn tail(&self, max: usize) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for file in self.files() {
            if lines.len() >= max {
                break;
            }
            let Ok(f) = File::open(&file) else { continue };
            let mut these: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            let room = max - lines.len();
            if these.len() > room {
                these.drain(..these.len() - room);
            }
            these.append(&mut lines);
            lines = these;
        }
        lines
    }

    /// A writer for tracing's fmt layer.
    pub fn writer(&self) -> io::Result<RotatingWriter> {
        std::fs::create_dir_all(&self.dir)?;
        let file = open_append(&self.current())?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingWriter {
            inner: Arc::new(Mutex::new(Open {
                files: self.clone(),
                file,
                size,
            })),
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Open {
    files: LogFiles,
    file: File,
    size: u64,
}

impl Open {
    fn rotate(&mut self) -> io::Result<()> {
        let files = &self.files;
        let name = |n: u32| files.dir.join(format!("{LOG_FILE}.{n}"));
        if files.keep == 0 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
        } else {
            let _ = std::fs::remove_file(name(files.keep));
            for n in (1..files.keep).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            std::fs::rename(files.current(), name(1))?;
            self.file = open_append(&files.current())?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Appends whole tracing lines; rotates before a line would cross the cap.
#[derive(Clone)]
pub struct RotatingWriter {
    inner: Arc<Mutex<Open>>,
}

impl Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut open = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if open.size > 0 && open.size + buf.len() as u64 > open.files.max_bytes {
            // A failed rotation keeps appending to the current file.
            let _ = open.rotate();
        }
        open.file.write_all(buf)?;
        open.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingWriter {
    type Writer = RotatingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_and_tail_reads_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogFiles::new(dir.path(), 4096, 2);
        let mut w = logs.writer().unwrap();
        for n in 0..400 {
            // tracing's fmt layer hands over each line in one write, as here.
            w.write_all(format!("line {n:04} {}\n", "x".repeat(40)).as_bytes())
                .unwrap();
        }
        let files = logs.files();
        assert_eq!(files.len(), 3, "current + 2 kept: {files:?}");
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 4096);
        }
        let tail = logs.tail(5);
        assert_eq!(tail.len(), 5);
        assert!(tail[4].starts_with("line 0399"), "{tail:?}");
        assert!(tail[0].starts_with("line 0395"), "{tail:?}");
        // More lines than the current file holds come from the rotated ones, in order.
        let long = logs.tail(150);
        assert!(long[149].starts_with("line 0399"));
        assert!(long[0].starts_with("line 0250"), "{}", long[0]);
    }
}
