//! Line-oriented inputs.
//!
//! An [`InputSpec`] is what the command line names: files, directories (read recursively, files
//! in path order), `-` for stdin, or comma-separated lists of those. It expands to a list of
//! [`Input`]s, each a name plus a way to open a byte stream; a remote object store is one more
//! [`Input`] implementation. Gzip streams are recognised by their magic bytes and decompressed
//! while reading (concatenated members too). A [`LineReader`] then yields lines with their
//! 1-based number, reusing one buffer, so memory stays bounded by the longest accepted line.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;

use crate::error::IoError;

const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Lines longer than this are rejected (`line_too_long`) instead of growing the buffer without
/// bound.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;

/// One source of raw event lines.
pub trait Input: Send {
    /// Shown in dead-letter lines and error messages (a path, `-`, or a URL).
    fn name(&self) -> &str;
    /// Starts reading. Gzip decompression is applied by the caller ([`LineReader::open`]).
    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError>;
}

/// A local file.
#[derive(Debug, Clone)]
pub struct FileInput {
    path: PathBuf,
    name: String,
}

impl FileInput {
    pub fn new(path: impl Into<PathBuf>) -> FileInput {
        let path = path.into();
        let name = path.display().to_string();
        FileInput { path, name }
    }
}

impl Input for FileInput {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError> {
        let file = File::open(&self.path).map_err(|source| IoError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
    }
}

/// The process's standard input, named `-`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdinInput;

impl Input for StdinInput {
    fn name(&self) -> &str {
        "-"
    }

    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError> {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER,
            std::io::stdin(),
        )))
    }
}

/// An already open byte stream with a name (embedding, tests, streams opened elsewhere).
pub struct ReaderInput {
    name: String,
    reader: Box<dyn BufRead + Send>,
}

impl ReaderInput {
    pub fn new(name: impl Into<String>, reader: Box<dyn BufRead + Send>) -> ReaderInput {
        ReaderInput {
            name: name.into(),
            reader,
        }
    }
}

impl Input for ReaderInput {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError> {
        Ok(self.reader)
    }
}

/// One location named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputLocation {
    Stdin,
    /// A file or a directory.
    Path(PathBuf),
}

/// The inputs of a run, as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub locations: Vec<InputLocation>,
}

impl InputSpec {
    /// Parses command-line arguments. Each may be a comma-separated list (Blurr's
    /// `--source a.json,b.json`), unless a file of that exact name exists. URLs with a scheme
    /// (`s3://…`) are refused until a remote input is implemented.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<InputSpec, IoError> {
        let mut locations = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            if arg.contains(',') && !Path::new(arg).exists() {
                for part in arg.split(',').filter(|p| !p.trim().is_empty()) {
                    locations.push(parse_location(part.trim())?);
                }
            } else if !arg.is_empty() {
                locations.push(parse_location(arg)?);
            }
        }
        if locations.is_empty() {
            return Err(IoError::NoInput);
        }
        Ok(InputSpec { locations })
    }

    /// Expands directories (recursively, files sorted by path; hidden files and directories,
    /// whose names start with `.`, are skipped) and checks that every path exists.
    pub fn inputs(&self) -> Result<Vec<Box<dyn Input>>, IoError> {
        let mut inputs: Vec<Box<dyn Input>> = Vec::new();
        for location in &self.locations {
            match location {
                InputLocation::Stdin => inputs.push(Box::new(StdinInput)),
                InputLocation::Path(path) if path.is_dir() => {
                    for file in files_under(path)? {
                        inputs.push(Box::new(FileInput::new(file)));
                    }
                }
                InputLocation::Path(path) if path.exists() => {
                    inputs.push(Box::new(FileInput::new(path.clone())));
                }
                InputLocation::Path(path) => {
                    return Err(IoError::NotFound { path: path.clone() });
                }
            }
        }
        Ok(inputs)
    }
}

fn parse_location(text: &str) -> Result<InputLocation, IoError> {
    if text == "-" {
        return Ok(InputLocation::Stdin);
    }
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(IoError::UnsupportedScheme {
            location: text.to_owned(),
            scheme: scheme.to_owned(),
        });
    }
    Ok(InputLocation::Path(PathBuf::from(text)))
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|source| IoError::Walk {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// One line of an input, without its line terminator (`\n` or `\r\n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number in the (decompressed) input.
    pub number: u64,
    /// At most the reader's maximum line length.
    pub bytes: &'a [u8],
    /// The line was longer than the maximum and `bytes` holds only its beginning.
    pub truncated: bool,
}

/// Reads one input line by line. Blank lines (only ASCII whitespace) are skipped but counted
/// in line numbers, so numbers always match the file.
pub struct LineReader {
    name: Arc<str>,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    number: u64,
    max_len: usize,
}

impl LineReader {
    /// Opens an input, decompressing it if it starts with the gzip magic bytes.
    pub fn open(input: Box<dyn Input>) -> Result<LineReader, IoError> {
        let name: Arc<str> = Arc::from(input.name());
        let mut reader = input.open()?;
        let is_gzip = loop {
            match reader.fill_buf() {
                Ok(head) => break head.starts_with(&GZIP_MAGIC),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(IoError::Read {
                        input: name.to_string(),
                        source,
                    });
                }
            }
        };
        let reader: Box<dyn BufRead + Send> = if is_gzip {
            Box::new(BufReader::with_capacity(
                READ_BUFFER,
                MultiGzDecoder::new(reader),
            ))
        } else {
            reader
        };
        Ok(LineReader::new(name, reader))
    }

    /// Reads an already decoded stream.
    pub fn new(name: Arc<str>, reader: Box<dyn BufRead + Send>) -> LineReader {
        LineReader {
            name,
            reader,
            buf: Vec::with_capacity(4096),
            number: 0,
            max_len: DEFAULT_MAX_LINE_LEN,
        }
    }

    /// Sets the maximum line length (bytes, without terminator).
    pub fn with_max_line_len(mut self, max_len: usize) -> LineReader {
        self.max_len = max_len;
        self
    }

    /// The input's name, shared so that each event can cheaply keep its origin.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The next non-blank line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, IoError> {
        loop {
            let Some(truncated) = self.read_raw()? else {
                return Ok(None);
            };
            self.number += 1;
            if !truncated && self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Line {
                number: self.number,
                bytes: &self.buf,
                truncated,
            }));
        }
    }

    /// Reads one line into `buf` (terminator removed). `None` at end of input; otherwise
    /// whether the line was cut at `max_len`.
    fn read_raw(&mut self) -> Result<Option<bool>, IoError> {
        let LineReader {
            reader,
            buf,
            max_len,
            name,
            ..
        } = self;
        buf.clear();
        let mut read_any = false;
        let mut truncated = false;
        loop {
            let available = match reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(IoError::Read {
                        input: name.to_string(),
                        source,
                    });
                }
            };
            if available.is_empty() {
                break;
            }
            read_any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            let room = max_len.saturating_sub(buf.len());
            if chunk.len() > room {
                truncated = true;
            }
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            match newline {
                Some(i) => {
                    reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = available.len();
                    reader.consume(n);
                }
            }
        }
        if !read_any {
            return Ok(None);
        }
        if !truncated && buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn reader_of(bytes: &[u8]) -> LineReader {
        LineReader::new(Arc::from("test"), Box::new(Cursor::new(bytes.to_vec())))
    }

    fn collect(mut reader: LineReader) -> Vec<(u64, Vec<u8>, bool)> {
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((line.number, line.bytes.to_vec(), line.truncated));
        }
        lines
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn lines_with_crlf_blank_lines_and_no_final_newline() {
        let lines = collect(reader_of(b"{\"a\":1}\r\n\n  \r\n{\"b\":2}\n{\"c\":3}"));
        assert_eq!(
            lines,
            vec![
                (1, b"{\"a\":1}".to_vec(), false),
                (4, b"{\"b\":2}".to_vec(), false),
                (5, b"{\"c\":3}".to_vec(), false),
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_passed_through_as_bytes() {
        let lines = collect(reader_of(b"{\"a\":\"\xff\"}\n"));
        assert_eq!(lines, vec![(1, b"{\"a\":\"\xff\"}".to_vec(), false)]);
    }

    #[test]
    fn long_lines_are_cut_and_flagged_and_the_next_line_is_intact() {
        let reader = reader_of(b"0123456789\nabc\n").with_max_line_len(4);
        let lines = collect(reader);
        assert_eq!(
            lines,
            vec![(1, b"0123".to_vec(), true), (2, b"abc".to_vec(), false)]
        );
    }

    #[test]
    fn lines_spanning_buffer_refills_are_joined() {
        let data = b"first line\nsecond\n".to_vec();
        let reader = LineReader::new(
            Arc::from("small"),
            Box::new(BufReader::with_capacity(3, Cursor::new(data))),
        );
        let lines = collect(reader);
        assert_eq!(lines[0].1, b"first line");
        assert_eq!(lines[1].1, b"second");
    }

    #[test]
    fn gzip_is_detected_and_concatenated_members_are_read() {
        let mut data = gzip(b"{\"a\":1}\n");
        data.extend(gzip(b"{\"a\":2}\n"));
        let input = ReaderInput::new("mem.gz", Box::new(Cursor::new(data)));
        let reader = LineReader::open(Box::new(input)).unwrap();
        assert_eq!(&**reader.name(), "mem.gz");
        let lines = collect(reader);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].1, b"{\"a\":2}");
    }

    #[test]
    fn spec_expands_lists_directories_in_path_order_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).unwrap();
        std::fs::write(root.join("b/nested/z.json"), b"{}\n").unwrap();
        std::fs::write(root.join("b/a.json.gz"), gzip(b"{}\n")).unwrap();
        std::fs::write(root.join("b/.hidden"), b"{}\n").unwrap();
        std::fs::write(root.join("one.json"), b"{}\n").unwrap();
        let list = format!(
            "{},{}",
            root.join("one.json").display(),
            root.join("b").display()
        );
        let spec = InputSpec::parse(&[list.as_str(), "-"]).unwrap();
        let names: Vec<String> = spec
            .inputs()
            .unwrap()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                root.join("one.json").display().to_string(),
                root.join("b/a.json.gz").display().to_string(),
                root.join("b/nested/z.json").display().to_string(),
                "-".to_owned(),
            ]
        );
        let gz = spec.inputs().unwrap().swap_remove(1);
        let lines = collect(LineReader::open(gz).unwrap());
        assert_eq!(lines, vec![(1, b"{}".to_vec(), false)]);
    }

    #[test]
    fn spec_errors() {
        assert!(matches!(
            InputSpec::parse::<&str>(&[]),
            Err(IoError::NoInput)
        ));
        assert!(matches!(
            InputSpec::parse(&["s3://bucket/key"]),
            Err(IoError::UnsupportedScheme { .. })
        ));
        let spec = InputSpec::parse(&["/definitely/not/here.json"]).unwrap();
        assert!(matches!(spec.inputs(), Err(IoError::NotFound { .. })));
    }
}
