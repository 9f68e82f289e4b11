//! Line-oriented inputs.
//!
//! An [`InputSpec`] is what the command line names: files, directories (read recursively, files
//! in path order), `-` for stdin, or comma-separated lists of those. It expands to a list of
//! [`Input`]s, each a name plus a way to open a byte stream; a remote object store is one more
//! [`Input`] implementation. Gzip streams are recognised by their magic bytes and decompressed
//! while reading (concatenated members too). A [`LineReader`] then yields lines with their
//! 1-based number, borrowed from the stream's own buffer where a line lies whole in it and
//! copied into one reused buffer otherwise, so memory stays bounded by the longest accepted
//! line. Regular files are read through a memory map, a window at a time.

use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;
use memmap2::{Mmap, MmapOptions};

use crate::error::IoError;

const READ_BUFFER: usize = 256 * 1024;
/// Files are mapped a window at a time rather than whole because every mapped page that has
/// been read counts in the process's resident set until it is unmapped: a whole-file map would
/// add the size of the input (2 GB and more) to peak RSS, where a window bounds it like a read
/// buffer does. One line per window crosses a boundary and is copied.
const MAP_WINDOW: usize = 16 * 1024 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The UTF-8 byte-order mark some editors and exporters put at the start of a text file.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Lines longer than this are rejected (`line_too_long`) instead of growing the buffer without
/// bound.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;

/// One source of raw event lines.
pub trait Input: Send {
    /// Shown in dead-letter lines and error messages (a path, `-`, or a URL).
    fn name(&self) -> &str;
    /// Starts reading. Gzip decompression is applied by the caller ([`LineReader::open`]).
    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError>;
    /// The key under which a store checkpoints how far this input was applied, the same
    /// whichever way the input is named (a file's absolute path, an object's URL); `None` for
    /// inputs that cannot be read again (stdin), which are never checkpointed.
    fn checkpoint_key(&self) -> Option<String> {
        None
    }
    /// The input's size in bytes where known: part of a run's fingerprint, so that a file that
    /// grew is not taken for the input of a crashed run.
    fn size(&self) -> Option<u64> {
        None
    }
}

/// A local file.
///
/// A non-empty regular file is read through a memory map (see [`MappedFile`]), which spares
/// the kernel's copy into a read buffer; anything else (FIFOs, `/dev/stdin` and other special
/// files, empty files, or a file the system refuses to map) is read with `read()`. A mapped
/// file must not be truncated while it is read: touching a mapped page past the new end raises
/// SIGBUS and ends the process, where `read()` would simply have seen the file end early.
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

    fn checkpoint_key(&self) -> Option<String> {
        let path = std::fs::canonicalize(&self.path).ok()?;
        Some(format!("file:{}", path.display()))
    }

    fn size(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }

    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError> {
        let file = File::open(&self.path).map_err(|source| IoError::Open {
            path: self.path.clone(),
            source,
        })?;
        match MappedFile::new(file, MAP_WINDOW) {
            Ok(mapped) => Ok(Box::new(mapped)),
            Err(file) => Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file))),
        }
    }
}

/// A regular file read through a memory-mapped window that slides forward as it is consumed,
/// so that lines are parsed straight from the page cache.
///
/// Each window is mapped from the file's length at that moment, so a file that grows while it
/// is read is read to its new end, as with `read()`. Truncation below the current window is
/// the one case that differs (see [`FileInput`]).
struct MappedFile {
    file: File,
    window_len: usize,
    /// File offset of the window's first byte.
    start: u64,
    window: Mmap,
    /// Bytes of the window already consumed.
    pos: usize,
}

impl MappedFile {
    /// Maps the first window of a non-empty regular file, or gives the file back to be read
    /// with `read()`: special files cannot be mapped or have no meaningful length, an empty
    /// file (or one like those in `/proc` that reports no length) cannot be mapped on every
    /// platform, and mapping can fail (address space, system limits) where reading still works.
    fn new(file: File, window_len: usize) -> Result<MappedFile, File> {
        if !file.metadata().is_ok_and(|meta| meta.is_file()) {
            return Err(file);
        }
        match map_window(&file, 0, window_len) {
            Ok(Some(window)) => Ok(MappedFile {
                file,
                window_len,
                start: 0,
                window,
                pos: 0,
            }),
            _ => Err(file),
        }
    }

    /// Moves on to the window after this one, if the file goes on. Out of line: called once
    /// per window, it would make each of the calls per line save and restore registers.
    #[inline(never)]
    fn next_window(&mut self) -> io::Result<()> {
        let next = self.start + self.window.len() as u64;
        if let Some(window) = map_window(&self.file, next, self.window_len)? {
            self.window = window;
            self.start = next;
            self.pos = 0;
        }
        Ok(())
    }
}

/// Maps up to `window_len` bytes of `file` from offset `start`; `None` at the file's end.
fn map_window(file: &File, start: u64, window_len: usize) -> io::Result<Option<Mmap>> {
    let remaining = file.metadata()?.len().saturating_sub(start);
    if remaining == 0 {
        return Ok(None);
    }
    let len = usize::try_from(remaining).map_or(window_len, |r| r.min(window_len));
    // `populate` maps the whole window in the one system call (the file is read front to back
    // anyway) instead of taking a page fault for every few pages of it.
    // SAFETY: the map is only ever read, through `&[u8]` borrows that `MappedFile` hands out.
    // What `Mmap` cannot rule out is another process changing the file underneath: inputs are
    // event files that nothing writes while a run reads them, which is the contract documented
    // on `FileInput` (truncation would raise SIGBUS; an in-place rewrite would change bytes
    // already handed out as immutable). `len` stays within the file as measured just above.
    let window = unsafe {
        MmapOptions::new()
            .offset(start)
            .len(len)
            .populate()
            .map(file)?
    };
    // A read-ahead hint only: reading is correct without it, so its failure is ignored.
    #[cfg(unix)]
    let _ = window.advise(memmap2::Advice::Sequential);
    Ok(Some(window))
}

impl Read for MappedFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for MappedFile {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.window.len() {
            self.next_window()?;
        }
        Ok(&self.window[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = self.pos.saturating_add(amt).min(self.window.len());
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
    /// A line the reader's buffer does not hold whole: it crosses a refill, has no final
    /// newline, or is cut at `max_len`.
    buf: Vec<u8>,
    /// Bytes of the reader's buffer taken by the line last returned from it: consumed only at
    /// the next call, because that line borrows them until then.
    pending_consume: usize,
    number: u64,
    max_len: usize,
    /// For a compressed input, the compressed bytes consumed so far: where a corrupt stream
    /// was found.
    compressed_offset: Option<Arc<AtomicU64>>,
    /// A byte-order mark was skipped at the start.
    bom: bool,
    /// The line [`LineReader::advance`] found.
    ready: Option<Ready>,
    skip_through: u64,
    skipped: u64,
}

/// Where the line [`LineReader::advance`] found is.
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// The reader's buffer holds it whole, consumed at the next `advance`.
    InBuffer { len: usize },
    /// Copied into `buf`.
    Copied { truncated: bool },
}

/// Counts the bytes taken from the reader below a decompressor.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.consumed.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// Where the next non-blank line is.
enum Next {
    End,
    /// Whole in the reader's buffer: `len` bytes of content, `consume` with its terminator.
    InBuffer {
        len: usize,
        consume: usize,
    },
    /// To be assembled in `buf`.
    Copy,
}

impl LineReader {
    /// Opens an input, decompressing it if it starts with the gzip magic bytes, and skips a
    /// UTF-8 byte-order mark at the start of its (decompressed) text.
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
        let mut line_reader = if is_gzip {
            let consumed = Arc::new(AtomicU64::new(0));
            let counting = Counting {
                inner: reader,
                consumed: Arc::clone(&consumed),
            };
            let mut line_reader = LineReader::new(
                name,
                Box::new(BufReader::with_capacity(
                    READ_BUFFER,
                    MultiGzDecoder::new(counting),
                )),
            );
            line_reader.compressed_offset = Some(consumed);
            line_reader
        } else {
            LineReader::new(name, reader)
        };
        line_reader.skip_bom()?;
        Ok(line_reader)
    }

    fn skip_bom(&mut self) -> Result<(), IoError> {
        let head = loop {
            match self.reader.fill_buf() {
                Ok(head) => break head,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => return Err(read_error(&self.name, &self.compressed_offset, source)),
            }
        };
        // A mark cut by the buffer's end is left alone: buffers hold far more than 3 bytes.
        if head.starts_with(&BOM) {
            self.reader.consume(BOM.len());
            self.bom = true;
        }
        Ok(())
    }

    /// Lines read so far, blank ones included: the offset of the next line.
    pub fn lines_read(&self) -> u64 {
        self.number
    }

    /// Whether a byte-order mark was skipped at the start of the input.
    pub fn skipped_bom(&self) -> bool {
        self.bom
    }

    /// Reads an already decoded stream.
    pub fn new(name: Arc<str>, reader: Box<dyn BufRead + Send>) -> LineReader {
        LineReader {
            name,
            reader,
            buf: Vec::with_capacity(4096),
            pending_consume: 0,
            number: 0,
            max_len: DEFAULT_MAX_LINE_LEN,
            compressed_offset: None,
            bom: false,
            ready: None,
            skip_through: 0,
            skipped: 0,
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
        if !self.advance()? {
            return Ok(None);
        }
        self.line().map(Some)
    }

    /// Moves to the next non-blank line past [`LineReader::skip_through`], without handing it
    /// out: `false` at the end of the input. [`LineReader::line`] then gives the line. Two
    /// steps, so that a caller can act on the end (or an error) while holding no borrow of
    /// the reader.
    #[inline]
    pub fn advance(&mut self) -> Result<bool, IoError> {
        self.reader
            .consume(std::mem::take(&mut self.pending_consume));
        self.ready = None;
        loop {
            match self.skip_blank_in_buffer()? {
                Next::End => return Ok(false),
                Next::InBuffer { len, consume } => {
                    self.number += 1;
                    if self.number <= self.skip_through {
                        self.skipped += 1;
                        self.reader.consume(consume);
                        continue;
                    }
                    self.pending_consume = consume;
                    self.ready = Some(Ready::InBuffer { len });
                    return Ok(true);
                }
                Next::Copy => {
                    let truncated = self.read_copied()?;
                    self.number += 1;
                    if truncated || !is_blank(&self.buf) {
                        if self.number <= self.skip_through {
                            self.skipped += 1;
                            continue;
                        }
                        self.ready = Some(Ready::Copied { truncated });
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// The line [`LineReader::advance`] moved to.
    #[inline]
    pub fn line(&mut self) -> Result<Line<'_>, IoError> {
        let number = self.number;
        match self.ready {
            Some(Ready::InBuffer { len }) => {
                // Nothing was consumed since `advance` found the line there, so a `BufRead`
                // returns the same buffer without reading; one that does not is reported
                // rather than trusted.
                let available = match self.reader.fill_buf() {
                    Ok(available) => available,
                    Err(source) => {
                        return Err(read_error(&self.name, &self.compressed_offset, source));
                    }
                };
                let bytes = available.get(..len).ok_or_else(|| IoError::Read {
                    input: self.name.to_string(),
                    source: io::Error::other("the input's buffer changed without a consume"),
                })?;
                Ok(Line {
                    number,
                    bytes,
                    truncated: false,
                })
            }
            Some(Ready::Copied { truncated }) => Ok(Line {
                number,
                bytes: &self.buf,
                truncated,
            }),
            None => Err(IoError::Read {
                input: self.name.to_string(),
                source: io::Error::other(
                    "no line was read (a bug in dtc: `line` before `advance`)",
                ),
            }),
        }
    }

    /// Lines numbered up to `n` are skipped (and counted): an earlier run applied them.
    pub fn skip_through(&mut self, n: u64) {
        self.skip_through = n;
    }

    /// Lines skipped by [`LineReader::skip_through`] so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Skips (and counts) the blank lines that lie whole in the reader's buffer, and tells
    /// where the next line is without consuming it.
    fn skip_blank_in_buffer(&mut self) -> Result<Next, IoError> {
        loop {
            let available = match try_fill(&mut *self.reader) {
                Ok(Some(available)) => available,
                Ok(None) => continue,
                Err(source) => {
                    return Err(read_error(&self.name, &self.compressed_offset, source));
                }
            };
            if available.is_empty() {
                return Ok(Next::End);
            }
            let Some(newline) = memchr::memchr(b'\n', available) else {
                return Ok(Next::Copy);
            };
            // As in `read_copied`, the limit counts a '\r' before the '\n'.
            if newline > self.max_len {
                return Ok(Next::Copy);
            }
            let line = strip_cr(&available[..newline]);
            if !is_blank(line) {
                return Ok(Next::InBuffer {
                    len: line.len(),
                    consume: newline + 1,
                });
            }
            self.number += 1;
            self.reader.consume(newline + 1);
        }
    }

    /// Reads the next line into `buf` (terminator removed), across buffer refills, keeping at
    /// most `max_len` bytes. Returns whether the line was cut.
    fn read_copied(&mut self) -> Result<bool, IoError> {
        let mut failure = None;
        let truncated = self.copy_line(&mut failure);
        match failure {
            Some(source) => Err(read_error(&self.name, &self.compressed_offset, source)),
            None => Ok(truncated),
        }
    }

    /// [`LineReader::read_copied`]'s loop; a read failure is left in `failure`.
    fn copy_line(&mut self, failure: &mut Option<io::Error>) -> bool {
        let LineReader {
            reader,
            buf,
            max_len,
            ..
        } = self;
        buf.clear();
        let mut truncated = false;
        loop {
            let available = match try_fill(&mut **reader) {
                Ok(Some(available)) => available,
                Ok(None) => continue,
                Err(source) => {
                    *failure = Some(source);
                    return truncated;
                }
            };
            if available.is_empty() {
                break;
            }
            let newline = memchr::memchr(b'\n', available);
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
        if !truncated && buf.last() == Some(&b'\r') {
            buf.pop();
        }
        truncated
    }
}

/// The reader's buffered bytes, refilled if empty (empty only at the end of the input), or
/// `None` when the refill was interrupted and is to be retried. The callers retry, not this
/// function, because a borrow returned from inside a loop keeps the reader borrowed for every
/// later iteration.
fn try_fill(reader: &mut (dyn BufRead + Send)) -> io::Result<Option<&[u8]>> {
    match reader.fill_buf() {
        Ok(available) => Ok(Some(available)),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// A read failure of input `name`: for a compressed input whose data is damaged or cut short,
/// an [`IoError::Corrupt`] naming where in the file it was found.
fn read_error(
    name: &str,
    compressed_offset: &Option<Arc<AtomicU64>>,
    source: io::Error,
) -> IoError {
    let damaged = matches!(
        source.kind(),
        ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
    );
    match compressed_offset {
        Some(consumed) if damaged => IoError::Corrupt {
            input: name.to_string(),
            offset: consumed.load(Ordering::Relaxed),
            detail: source.to_string(),
        },
        _ => IoError::Read {
            input: name.to_string(),
            source,
        },
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `all` stops at the first non-whitespace byte, so a JSON line costs one byte here.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
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
        let lines = collect(reader_with_capacity(3, b"first line\nsecond\n"));
        assert_eq!(lines[0].1, b"first line");
        assert_eq!(lines[1].1, b"second");
    }

    fn reader_with_capacity(capacity: usize, bytes: &[u8]) -> LineReader {
        LineReader::new(
            Arc::from("small"),
            Box::new(BufReader::with_capacity(
                capacity,
                Cursor::new(bytes.to_vec()),
            )),
        )
    }

    #[test]
    fn lines_ending_exactly_at_a_buffer_boundary() {
        // Buffers of 4: "abc\n" | "de\n\n" | "fgh\n" | "ijkl" | "\nxy\n".
        let lines = collect(reader_with_capacity(4, b"abc\nde\n\nfgh\nijkl\nxy\n"));
        assert_eq!(
            lines,
            vec![
                (1, b"abc".to_vec(), false),
                (2, b"de".to_vec(), false),
                (4, b"fgh".to_vec(), false),
                (5, b"ijkl".to_vec(), false),
                (6, b"xy".to_vec(), false),
            ]
        );
        // A line of exactly the maximum whose newline starts the next buffer is not cut.
        let reader = reader_with_capacity(4, b"ijkl\nxy\n").with_max_line_len(4);
        assert_eq!(
            collect(reader),
            vec![(1, b"ijkl".to_vec(), false), (2, b"xy".to_vec(), false)]
        );
    }

    #[test]
    fn lines_inside_one_buffer_are_borrowed_from_it() {
        static DATA: &[u8] = b"{\"a\":1}\n\n  \t\n{\"b\":2}\r\n {\"c\":3}\n";
        let mut reader = LineReader::new(Arc::from("static"), Box::new(Cursor::new(DATA)));
        let range = DATA.as_ptr_range();
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            assert!(
                range.contains(&line.bytes.as_ptr()),
                "line {} was copied",
                line.number
            );
            lines.push((line.number, line.bytes.to_vec(), line.truncated));
        }
        assert_eq!(
            lines,
            vec![
                (1, b"{\"a\":1}".to_vec(), false),
                (4, b"{\"b\":2}".to_vec(), false),
                (5, b" {\"c\":3}".to_vec(), false),
            ]
        );
        assert!(reader.buf.is_empty());
    }

    #[test]
    fn crlf_split_across_refills() {
        // Buffers of 4: "abc\r" | "\nxy\r" | "\n".
        let lines = collect(reader_with_capacity(4, b"abc\r\nxy\r\n"));
        assert_eq!(
            lines,
            vec![(1, b"abc".to_vec(), false), (2, b"xy".to_vec(), false)]
        );
        // The '\r' counts towards the maximum, in the buffer or across a refill alike.
        for capacity in [4, 64] {
            let reader = reader_with_capacity(capacity, b"abc\r\nxy\r\n").with_max_line_len(3);
            assert_eq!(
                collect(reader),
                vec![(1, b"abc".to_vec(), true), (2, b"xy".to_vec(), false)],
                "capacity {capacity}"
            );
        }
    }

    /// Lines that mix every case the borrowing and the copying paths split between them.
    const MIXED: &[u8] = b"{\"a\":1}\r\n\n \r\n0123456789\n{\"b\":2}\n\t\nabcdef\r\nlast\r";

    fn mixed_expected() -> Vec<(u64, Vec<u8>, bool)> {
        vec![
            (1, b"{\"a\":1}".to_vec(), false),
            (4, b"01234567".to_vec(), true),
            (5, b"{\"b\":2}".to_vec(), false),
            (7, b"abcdef".to_vec(), false),
            (8, b"last".to_vec(), false),
        ]
    }

    #[test]
    fn every_buffer_size_reads_the_same_lines() {
        for capacity in 1..=MIXED.len() + 1 {
            let reader = reader_with_capacity(capacity, MIXED).with_max_line_len(8);
            assert_eq!(collect(reader), mixed_expected(), "capacity {capacity}");
        }
    }

    #[test]
    fn interrupted_reads_are_retried() {
        /// Fails every other read with `Interrupted`, and returns at most 3 bytes otherwise.
        struct Interrupting {
            data: Cursor<&'static [u8]>,
            interrupt: bool,
        }
        impl Read for Interrupting {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                self.interrupt = !self.interrupt;
                if self.interrupt {
                    return Err(io::Error::from(ErrorKind::Interrupted));
                }
                let n = out.len().min(3);
                self.data.read(&mut out[..n])
            }
        }
        let inner = Interrupting {
            data: Cursor::new(MIXED),
            interrupt: false,
        };
        let reader = LineReader::new(Arc::from("eintr"), Box::new(BufReader::new(inner)));
        assert_eq!(collect(reader.with_max_line_len(8)), mixed_expected());
    }

    #[test]
    fn mapped_windows_read_the_same_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.json");
        std::fs::write(&path, MIXED).unwrap();
        // Windows of 1 and 4 bytes put every line, '\r' and '\n' across some boundary.
        for window_len in [1, 4, 7, MAP_WINDOW] {
            let Ok(mapped) = MappedFile::new(File::open(&path).unwrap(), window_len) else {
                panic!("a non-empty regular file is mapped");
            };
            let reader = LineReader::new(Arc::from("mapped"), Box::new(mapped));
            assert_eq!(
                collect(reader.with_max_line_len(8)),
                mixed_expected(),
                "window {window_len}"
            );
        }
        let reader = LineReader::open(Box::new(FileInput::new(&path))).unwrap();
        assert_eq!(collect(reader.with_max_line_len(8)), mixed_expected());
    }

    #[test]
    fn a_mapped_file_that_grows_is_read_to_its_new_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.json");
        std::fs::write(&path, b"{\"a\":1}\n").unwrap();
        let Ok(mapped) = MappedFile::new(File::open(&path).unwrap(), 4) else {
            panic!("a non-empty regular file is mapped");
        };
        let mut reader = LineReader::new(Arc::from("growing"), Box::new(mapped));
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"{\"a\":1}");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"b\":2}\n")
            .unwrap();
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"{\"b\":2}");
        assert_eq!(reader.next_line().unwrap(), None);
    }

    #[test]
    fn empty_files_are_read_without_a_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.json");
        std::fs::write(&path, b"").unwrap();
        assert!(MappedFile::new(File::open(&path).unwrap(), MAP_WINDOW).is_err());
        let reader = LineReader::open(Box::new(FileInput::new(&path))).unwrap();
        assert_eq!(collect(reader), vec![]);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_named_as_files_are_read_without_a_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            std::fs::write(writer_path, b"{\"a\":1}\n\n{\"b\":2}\n").unwrap();
        });
        let reader = LineReader::open(Box::new(FileInput::new(&path))).unwrap();
        let lines = collect(reader);
        writer.join().unwrap();
        assert_eq!(
            lines,
            vec![
                (1, b"{\"a\":1}".to_vec(), false),
                (3, b"{\"b\":2}".to_vec(), false)
            ]
        );
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
    fn a_byte_order_mark_is_skipped_plain_and_compressed() {
        let text = b"\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n";
        for data in [text.to_vec(), gzip(text)] {
            let input = ReaderInput::new("bom", Box::new(Cursor::new(data)));
            let reader = LineReader::open(Box::new(input)).unwrap();
            assert!(reader.skipped_bom());
            let lines = collect(reader);
            // Only the file's first mark: one inside the text is data.
            assert_eq!(lines[0].1, b"{\"a\":1}");
            assert_eq!(lines[1].1, b"\xEF\xBB\xBF{\"a\":2}");
        }
        let input = ReaderInput::new("plain", Box::new(Cursor::new(b"{}\n".to_vec())));
        assert!(!LineReader::open(Box::new(input)).unwrap().skipped_bom());
    }

    fn read_to_error(data: Vec<u8>) -> (usize, IoError) {
        let input = ReaderInput::new("bad.gz", Box::new(Cursor::new(data)));
        let mut reader = match LineReader::open(Box::new(input)) {
            Ok(reader) => reader,
            Err(e) => return (0, e),
        };
        let mut lines = 0;
        loop {
            match reader.next_line() {
                Ok(Some(_)) => lines += 1,
                Ok(None) => panic!("a damaged stream read to its end"),
                Err(e) => return (lines, e),
            }
        }
    }

    #[test]
    fn a_truncated_or_damaged_gzip_is_corrupt_with_its_offset() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", i * 7919).into_bytes())
            .collect();
        let whole = gzip(&text);
        let cut = whole[..whole.len() / 2].to_vec();
        let (_, error) = read_to_error(cut.clone());
        match error {
            IoError::Corrupt { input, offset, .. } => {
                assert_eq!(input, "bad.gz");
                assert!(offset > 0 && offset <= cut.len() as u64, "{offset}");
            }
            other => panic!("expected a corrupt input, got {other:?}"),
        }
        let mut damaged = whole.clone();
        let middle = damaged.len() / 2;
        for byte in &mut damaged[middle..middle + 64] {
            *byte ^= 0x5A;
        }
        let (_, error) = read_to_error(damaged);
        assert!(matches!(error, IoError::Corrupt { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("corrupt or truncated at compressed byte")
        );
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
