//! Input limits, and the line between input that is bad and a source that failed.
//!
//! [`Source`] wraps the caller's reader: its errors are marked [`SourceFailure`], so they
//! stay the caller's to classify (a dropped connection is worth a retry). [`Guarded`] sits
//! between the decompressor and the readers: it counts decompressed bytes and lines,
//! stops handing out bytes once a record, the whole input or the compression ratio passes
//! the spec's limits, and marks every other error from below as the decoder refusing the
//! bytes (corrupt, truncated or mislabelled), whatever `io::ErrorKind` the decoder chose.
//! [`classify`] turns the marks into [`EtlError`]s once reading stopped.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{EtlError, InputError, find_cause};
use crate::read::{Record, RecordVisitor};
use crate::spec::{RATIO_CHECKED_AFTER, SourceSpec};

/// An error of the caller's reader (the source stream), as opposed to its bytes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceFailure(#[source] pub io::Error);

/// Reading stopped on purpose: a limit was passed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Refused {
    message: String,
    line: u64,
}

/// The decoder refused the bytes.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
struct Undecodable {
    source: io::Error,
    line: u64,
    offset: u64,
}

/// The raw source: counts its bytes and marks its errors.
pub(crate) struct Source<R> {
    pub inner: R,
    pub count: Arc<AtomicU64>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            // Callers retry an interruption; it is not a failure.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(io::Error::new(e.kind(), SourceFailure(e))),
        }
    }
}

/// The limits of one input, from its spec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_record_bytes: u64,
    pub max_decompressed_bytes: u64,
    pub max_compression_ratio: u64,
}

impl Limits {
    pub fn of(source: &SourceSpec) -> Self {
        Self {
            max_record_bytes: source.max_record_bytes,
            max_decompressed_bytes: source.max_decompressed_bytes,
            max_compression_ratio: source.max_compression_ratio,
        }
    }
}

/// How far reading got, shared between the [`Guarded`] reader and the visitor that marks
/// record boundaries (both on the reading thread).
#[derive(Default)]
pub(crate) struct Progress {
    /// Decompressed bytes handed to the reader.
    consumed: Cell<u64>,
    newlines: Cell<u64>,
    /// `consumed` when the last record was handed over: the next one starts after it.
    record_start: Cell<u64>,
    newlines_at_record_start: Cell<u64>,
    /// The input line of the last record handed over.
    last_line: Cell<Option<u64>>,
}

impl Progress {
    fn record_done(&self, line: u64) {
        self.record_start.set(self.consumed.get());
        self.newlines_at_record_start.set(self.newlines.get());
        self.last_line.set(Some(line));
    }

    fn line(&self) -> u64 {
        self.newlines.get() + 1
    }
}

/// The decompressed input, limited and with its errors marked (see the module docs).
pub(crate) struct Guarded<R> {
    inner: R,
    limits: Limits,
    /// Compressed bytes read so far ([`Source::count`]).
    compressed: Arc<AtomicU64>,
    progress: Rc<Progress>,
    /// The CSV reader reads ahead of the records it hands over, so a record boundary is
    /// only known by the line of the last record; the JSON readers consume exactly.
    reads_ahead: bool,
}

impl<R: BufRead> Guarded<R> {
    pub fn new(inner: R, limits: Limits, compressed: Arc<AtomicU64>, reads_ahead: bool) -> Self {
        Self {
            inner,
            limits,
            compressed,
            progress: Rc::new(Progress::default()),
            reads_ahead,
        }
    }

    pub fn set_reads_ahead(&mut self, reads_ahead: bool) {
        self.reads_ahead = reads_ahead;
    }

    pub fn progress(&self) -> Rc<Progress> {
        Rc::clone(&self.progress)
    }

    /// Refuses to go on once a limit is passed. Checked before each refill, so at most one
    /// buffer (64 KiB) is read past a limit.
    fn check(&self) -> io::Result<()> {
        let p = &self.progress;
        let consumed = p.consumed.get();
        let refuse = |message: String, line: u64| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Refused { message, line },
            ))
        };
        let record = consumed - p.record_start.get();
        if record > self.limits.max_record_bytes {
            let (start, which) = match p.last_line.get() {
                Some(last) if self.reads_ahead => (last + 1, "a record"),
                // The last record started on its line and ended where the mark was.
                Some(last) => (
                    (last + 1).max(p.newlines_at_record_start.get() + 1),
                    "a record",
                ),
                None => (1, "the header or first record"),
            };
            return refuse(
                format!(
                    "{which} is longer than source.max_record_bytes ({} bytes): it starts at \
                     line {start} and is still open at line {} (an unclosed quote, bracket \
                     or missing line break?)",
                    self.limits.max_record_bytes,
                    p.line()
                ),
                start,
            );
        }
        if consumed > self.limits.max_decompressed_bytes {
            return refuse(
                format!(
                    "decompresses to more than source.max_decompressed_bytes ({} bytes)",
                    self.limits.max_decompressed_bytes
                ),
                p.line(),
            );
        }
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        if consumed > RATIO_CHECKED_AFTER
            && consumed > compressed.saturating_mul(self.limits.max_compression_ratio)
        {
            return refuse(
                format!(
                    "{consumed} bytes decompressed from {compressed}: more than \
                     source.max_compression_ratio ({}) times the compressed size",
                    self.limits.max_compression_ratio
                ),
                p.line(),
            );
        }
        Ok(())
    }
}

/// Marks an error from below the guard: the source's own stays as it is, anything else
/// is the decoder refusing the bytes.
fn mark(e: io::Error, progress: &Progress) -> io::Error {
    if e.kind() == io::ErrorKind::Interrupted || find_cause::<SourceFailure>(&e).is_some() {
        return e;
    }
    io::Error::new(
        io::ErrorKind::InvalidData,
        Undecodable {
            source: e,
            line: progress.line(),
            offset: progress.consumed.get(),
        },
    )
}

impl<R: BufRead> Read for Guarded<R> {
    /// Reads into `out` directly: a buffered reader below skips its own buffer for a read
    /// as large as it, which saves a copy of the whole input.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        let n = self.inner.read(out).map_err(|e| mark(e, &self.progress))?;
        self.advance(&out[..n]);
        Ok(n)
    }
}

impl<R> Guarded<R> {
    /// Counts bytes handed to the reader.
    fn advance(&self, bytes: &[u8]) {
        let p = &self.progress;
        p.newlines
            .set(p.newlines.get() + count_newlines(bytes) as u64);
        p.consumed.set(p.consumed.get() + bytes.len() as u64);
    }
}

impl<R: BufRead> BufRead for Guarded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check()?;
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf),
            Err(e) => Err(mark(e, &self.progress)),
        }
    }

    fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        // The bytes being consumed are the front of the inner buffer, which a refill
        // without a consume in between returns again without reading.
        if let Ok(buf) = self.inner.fill_buf() {
            let buf = &buf[..n.min(buf.len())];
            let p = &self.progress;
            p.newlines
                .set(p.newlines.get() + count_newlines(buf) as u64);
        }
        self.inner.consume(n);
        let p = &self.progress;
        p.consumed.set(p.consumed.get() + n as u64);
    }
}

/// Line breaks in `bytes`. Every byte of the input passes here, so the loop is written
/// for the compiler to vectorize: per-lane byte counters, summed before they can overflow.
/// 64 lanes measured 0.24 instructions a byte; 32 lanes did not vectorize (3.3).
fn count_newlines(bytes: &[u8]) -> usize {
    const LANES: usize = 64;
    // A lane counts at most one line break per block: 255 blocks fill a u8.
    const BLOCKS: usize = 255;
    let mut n = 0;
    let (blocks, rest) = bytes.as_chunks::<LANES>();
    for run in blocks.chunks(BLOCKS) {
        let mut lanes = [0u8; LANES];
        for block in run {
            for (lane, b) in lanes.iter_mut().zip(block) {
                *lane += u8::from(*b == b'\n');
            }
        }
        n += lanes.iter().map(|&c| usize::from(c)).sum::<usize>();
    }
    n + rest.iter().filter(|&&b| b == b'\n').count()
}

/// Passes records on and tells the guard where each ended.
pub(crate) struct MarkBoundaries<'a> {
    pub inner: &'a mut dyn RecordVisitor,
    pub progress: Rc<Progress>,
}

impl RecordVisitor for MarkBoundaries<'_> {
    fn record(&mut self, line: u64, record: &dyn Record) -> Result<(), EtlError> {
        self.progress.record_done(line);
        self.inner.record(line, record)
    }

    fn malformed(&mut self, line: u64, raw: &str, reason: String) -> Result<(), EtlError> {
        self.progress.record_done(line);
        self.inner.malformed(line, raw, reason)
    }

    fn layout(&mut self, layout: crate::read::Layout) {
        self.inner.layout(layout);
    }
}

/// Turns the marks on an I/O error into the error a caller acts on: a passed limit or
/// undecodable bytes are bad input (naming `input` and the line); a source failure is an
/// I/O error carrying the caller's own error again; anything else (the local file system)
/// is left as it is.
pub(crate) fn classify(e: EtlError, input: &str) -> EtlError {
    let EtlError::Io { context, source } = e else {
        return e;
    };
    if let Some(r) = find_cause::<Refused>(&source) {
        return InputError::new(input, r.message.clone())
            .at_line(r.line)
            .into();
    }
    if find_cause::<SourceFailure>(&source).is_none()
        && let Some(u) = find_cause::<Undecodable>(&source)
    {
        return InputError::new(
            input,
            format!(
                "cannot decompress or decode it after {} bytes: {} (truncated, corrupt, or \
                 not the compression its name or first bytes say?)",
                u.offset, u.source
            ),
        )
        .at_line(u.line)
        .into();
    }
    // Unwrap the source's own error, so the caller finds what its reader said.
    let source = match source.get_ref().map(|r| r.is::<SourceFailure>()) {
        Some(true) => match source.into_inner().map(|b| b.downcast::<SourceFailure>()) {
            Some(Ok(failure)) => failure.0,
            _ => io::Error::other("the source failed"),
        },
        _ => source,
    };
    EtlError::Io { context, source }
}

#[cfg(test)]
mod tests {

    #[test]
    fn newlines_are_counted_eight_bytes_at_a_time_exactly() {
        let mut bytes = Vec::new();
        for i in 0..1000u32 {
            bytes.push(if i % 7 == 0 || i % 13 == 0 {
                b'\n'
            } else {
                (i % 251) as u8
            });
        }
        for start in 0..9 {
            let s = &bytes[start..];
            assert_eq!(
                super::count_newlines(s),
                s.iter().filter(|&&b| b == b'\n').count()
            );
        }
        assert_eq!(
            super::count_newlines(b"\x8a\x0b\x09\n\n\xff\x0a\x00\x0a"),
            4
        );
    }

    use super::*;

    fn limits(record: u64, total: u64, ratio: u64) -> Limits {
        Limits {
            max_record_bytes: record,
            max_decompressed_bytes: total,
            max_compression_ratio: ratio,
        }
    }

    fn guard(data: &[u8], l: Limits) -> Guarded<&[u8]> {
        Guarded::new(data, l, Arc::new(AtomicU64::new(data.len() as u64)), false)
    }

    #[test]
    fn counts_lines_and_stops_past_the_total() {
        let data = b"a\nb\nc\nd\n".repeat(1000);
        let mut g = guard(&data, limits(u64::MAX, 4000, u64::MAX));
        let mut out = Vec::new();
        let err = g.read_to_end(&mut out).unwrap_err();
        let e = classify(EtlError::io("reading", err), "in.csv");
        let EtlError::Input(input) = e else {
            panic!("{e:?}")
        };
        assert!(
            input.message.contains("max_decompressed_bytes (4000"),
            "{input}"
        );
        // Refused at the first refill past the limit, naming the line reached.
        assert!(out.len() > 4000 && out.len() < data.len(), "{}", out.len());
        let lines = out.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(input.line, Some(lines + 1));
    }

    #[test]
    fn a_record_is_bounded_from_its_last_boundary() {
        let data = vec![b'x'; 10_000];
        let mut g = guard(&data, limits(4096, u64::MAX, u64::MAX));
        let mut buf = [0u8; 1024];
        // Under the limit: reads go on, and a boundary resets the count.
        for _ in 0..4 {
            g.read_exact(&mut buf).unwrap();
        }
        g.progress().record_done(1);
        for _ in 0..4 {
            g.read_exact(&mut buf).unwrap();
        }
        g.read_exact(&mut buf).unwrap();
        let err = g.read_exact(&mut buf).unwrap_err();
        let EtlError::Input(input) = classify(EtlError::io("reading", err), "in.ndjson") else {
            panic!("not input")
        };
        assert!(input.message.contains("max_record_bytes (4096"), "{input}");
    }

    #[test]
    fn source_errors_stay_the_callers() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"))
            }
        }
        let count = Arc::new(AtomicU64::new(0));
        let source = Source {
            inner: Broken,
            count: Arc::clone(&count),
        };
        let reader = io::BufReader::new(source);
        let mut g = Guarded::new(reader, limits(64, 64, 2), count, false);
        let err = g.fill_buf().unwrap_err();
        let e = classify(EtlError::io("reading", err), "in.csv");
        let EtlError::Io { source, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(source.to_string(), "peer gone");
    }
}
