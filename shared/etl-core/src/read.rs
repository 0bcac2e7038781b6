//! Readers: CSV, JSON (array, single object, concatenated objects) and NDJSON, plain or
//! gzip/zstd compressed. They stream: one record at a time is handed to a visitor, so
//! memory does not grow with the file.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use crate::error::{EtlError, InputError};
use crate::spec::{ExtraColumns, FieldSpec, SourceFormat};

/// One field of a record, as the reader found it.
pub(crate) enum Field<'a> {
    /// Not in this record (column missing from the header, key missing from the object).
    Absent,
    Text(&'a str),
    Json(&'a Value),
}

/// A record, seen through the schema: `field(i)` is schema column `i`.
pub(crate) trait Record {
    /// The field, or why it cannot be read (invalid UTF-8).
    fn field(&self, col: usize) -> Result<Field<'_>, String>;
    /// The record's bytes as they stand in the input (quoting kept), when a reader read it.
    fn raw(&self) -> &[u8] {
        &[]
    }
}

/// A field as quarantine files show it: the text that was read (JSON values other than
/// strings as their JSON text); a missing field, or one that is not UTF-8, is null.
pub(crate) fn field_text(field: Result<Field<'_>, String>) -> Option<String> {
    match field {
        Ok(Field::Text(t)) => Some(t.to_string()),
        Ok(Field::Json(v)) => Some(v.to_string()),
        Ok(Field::Absent) | Err(_) => None,
    }
}

/// What a reader hands records to.
pub(crate) trait RecordVisitor {
    fn record(&mut self, line: u64, record: &dyn Record) -> Result<(), EtlError>;
    /// A record the reader could not split into fields; `raw` is its text.
    fn malformed(&mut self, line: u64, raw: &str, reason: String) -> Result<(), EtlError>;
    /// How to split the raw bytes of this input's records again; told before the first record.
    fn layout(&mut self, _layout: Layout) {}
}

/// What a reader learnt about the input's columns.
#[derive(Debug, Default, Clone)]
pub struct InputColumns {
    /// Column names found in the input (CSV header; JSON keys, flattened).
    pub found: Vec<String>,
    /// Found but not in the schema, so dropped.
    pub dropped: Vec<String>,
}

/// Caps how many distinct unknown JSON keys are remembered for the manifest.
const MAX_REPORTED_EXTRA: usize = 200;

/// Opens the (possibly compressed) input. Compression is taken from the name (.gz,
/// .zst) or, failing that, from the first bytes.
/// Bytes read from the source, or decompressed, at a time.
const INPUT_BUFFER: usize = 1 << 16;

pub(crate) fn decompress<'a>(
    input: impl Read + 'a,
    name: &str,
) -> Result<Box<dyn BufRead + 'a>, EtlError> {
    let mut buffered = BufReader::with_capacity(INPUT_BUFFER, input);
    let head = buffered
        .fill_buf()
        .map_err(|e| EtlError::io(format!("reading {name}"), e))?;
    let lower = name.to_ascii_lowercase();
    let gz = lower.ends_with(".gz") || head.starts_with(&[0x1f, 0x8b]);
    let zst = lower.ends_with(".zst") || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            INPUT_BUFFER,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else if zst {
        let decoder = zstd::stream::read::Decoder::with_buffer(buffered)
            .map_err(|e| EtlError::io(format!("opening zstd stream {name}"), e))?;
        Box::new(BufReader::with_capacity(INPUT_BUFFER, decoder))
    } else {
        Box::new(buffered)
    })
}

/// The concrete format of an input, from the spec, the name and the first bytes.
pub(crate) fn resolve_format(
    declared: SourceFormat,
    name: &str,
    input: &mut dyn BufRead,
) -> Result<SourceFormat, EtlError> {
    if declared != SourceFormat::Auto {
        return Ok(declared);
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".zst"))
        .unwrap_or(&lower);
    if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
        return Ok(SourceFormat::Ndjson);
    }
    if stem.ends_with(".csv") || stem.ends_with(".tsv") || stem.ends_with(".txt") {
        return Ok(SourceFormat::Csv);
    }
    let head = input
        .fill_buf()
        .map_err(|e| EtlError::io(format!("reading {name}"), e))?;
    let first = head
        .iter()
        .copied()
        .find(|b| !(b.is_ascii_whitespace() || *b == 0xEF || *b == 0xBB || *b == 0xBF));
    Ok(match first {
        Some(b'[') => SourceFormat::Json,
        // A `.json` file of objects, one per line or pretty-printed, is a stream of
        // values: the JSON reader takes both.
        Some(b'{') if stem.ends_with(".json") => SourceFormat::Json,
        Some(b'{') => SourceFormat::Ndjson,
        _ => SourceFormat::Csv,
    })
}

fn skip_bom(input: &mut dyn BufRead, name: &str) -> Result<(), EtlError> {
    let head = input
        .fill_buf()
        .map_err(|e| EtlError::io(format!("reading {name}"), e))?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        input.consume(3);
    }
    Ok(())
}

/// Options shared by the readers.
pub(crate) struct ReadOptions<'a> {
    pub name: &'a str,
    pub schema: &'a [FieldSpec],
    pub delimiter: u8,
    pub extra_columns: ExtraColumns,
}

// ---------------------------------------------------------------------------------------
// CSV

struct CsvRecord<'a> {
    record: &'a csv::ByteRecord,
    /// All the record's fields back to back, when they are valid UTF-8 together: checking
    /// a record at once is cheaper than a call per field.
    text: Option<&'a str>,
    /// schema column -> input field index
    map: &'a [Option<usize>],
    raw: &'a [u8],
}

impl Record for CsvRecord<'_> {
    fn field(&self, col: usize) -> Result<Field<'_>, String> {
        let Some(range) = self.map[col].and_then(|i| self.record.range(i)) else {
            return Ok(Field::Absent);
        };
        // `get` is None when the field does not start and end on character boundaries,
        // which a field that is not valid UTF-8 on its own can do inside valid text.
        if let Some(text) = self.text.and_then(|t| t.get(range.clone())) {
            return Ok(Field::Text(text));
        }
        std::str::from_utf8(&self.record.as_slice()[range])
            .map(Field::Text)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    }

    fn raw(&self) -> &[u8] {
        self.raw
    }
}

/// The CSV dialect of every read, so that a record split again splits the same way.
fn csv_reader<R: Read>(delimiter: u8, input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        // As large as the buffer below it, which then reads straight into this one.
        .buffer_capacity(INPUT_BUFFER)
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(input)
}

/// Keeps a copy of what the CSV reader reads, so each record's bytes can be handed on as
/// they stand in the file: the csv crate only gives fields, unquoted. A copy is cheaper
/// than parsing twice, and only the bytes since the current record are kept.
struct Tee<'a> {
    inner: &'a mut dyn BufRead,
    seen: Vec<u8>,
    /// Input offset of `seen[0]`.
    base: u64,
}

/// Bytes kept before they are dropped: large enough that dropping is rare.
const TEE_KEEP: usize = 1 << 20;

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Tee<'_> {
    /// The record between input offsets `start` and `end`, without the line ends around
    /// it (the one before it, blank lines skipped, its own terminator), and how many line
    /// breaks came before it: the csv crate's line is where `start` is. Bytes before
    /// `start` are no longer needed.
    fn record(&mut self, start: u64, end: u64) -> (u64, &[u8]) {
        let from = (start - self.base) as usize;
        if from > TEE_KEEP {
            self.seen.drain(..from);
            self.base = start;
        }
        let from = (start - self.base) as usize;
        let to = (end - self.base) as usize;
        let bytes = &self.seen[from..to.min(self.seen.len())];
        let start = bytes
            .iter()
            .position(|b| !matches!(*b, b'\r' | b'\n'))
            .unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| !matches!(*b, b'\r' | b'\n'))
            .map_or(start, |e| e + 1);
        let breaks = bytes[..start].iter().filter(|b| **b == b'\n').count() as u64;
        (breaks, &bytes[start..end])
    }
}

pub(crate) fn read_csv(
    input: &mut dyn BufRead,
    opts: &ReadOptions<'_>,
    visitor: &mut dyn RecordVisitor,
) -> Result<InputColumns, EtlError> {
    skip_bom(input, opts.name)?;
    let tee = Tee {
        inner: input,
        seen: Vec::with_capacity(1 << 16),
        base: 0,
    };
    let mut reader = csv_reader(opts.delimiter, tee);
    let mut header = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut header)
        .map_err(|e| csv_error(opts.name, e))?
    {
        return Ok(InputColumns::default());
    }
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        // An empty file: no columns, no rows.
        return Ok(InputColumns::default());
    }
    let mut names = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| {
                InputError::new(
                    opts.name,
                    format!("header column {} is not valid UTF-8", i + 1),
                )
                .at_line(1)
            })?
            .trim()
            .to_string();
        if names.contains(&name) {
            return Err(
                InputError::new(opts.name, format!("header names column '{name}' twice"))
                    .at_line(1)
                    .into(),
            );
        }
        names.push(name);
    }
    let map = map_columns(&names, opts)?;
    let columns = InputColumns {
        dropped: names
            .iter()
            .filter(|n| !opts.schema.iter().any(|f| &f.name == *n))
            .cloned()
            .collect(),
        found: names,
    };
    if opts.extra_columns == ExtraColumns::Fail && !columns.dropped.is_empty() {
        return Err(InputError::new(
            opts.name,
            format!("columns not in the schema: {}", columns.dropped.join(", ")),
        )
        .at_line(1)
        .into());
    }
    visitor.layout(Layout::Csv {
        delimiter: opts.delimiter,
        map: map.clone(),
        names: opts.schema.iter().map(|f| f.name.clone()).collect(),
    });

    let width = header.len();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(opts.name, e)),
        }
        let (line, start) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
        let end = reader.position().byte();
        let (breaks, raw) = reader.get_mut().record(start, end);
        let line = line + breaks;
        if record.len() != width {
            visitor.malformed(
                line,
                &String::from_utf8_lossy(raw),
                format!("expected {width} fields, found {}", record.len()),
            )?;
            continue;
        }
        visitor.record(
            line,
            &CsvRecord {
                record: &record,
                text: std::str::from_utf8(record.as_slice()).ok(),
                map: &map,
                raw,
            },
        )?;
    }
    Ok(columns)
}

fn csv_error(name: &str, e: csv::Error) -> EtlError {
    let line = e.position().map(csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => EtlError::io(format!("reading {name}"), io),
        other => {
            let mut err = InputError::new(name, format!("{other:?}"));
            err.line = line;
            err.into()
        }
    }
}

/// schema column -> input column index; a required column missing from the input is an
/// error for the whole file.
fn map_columns(names: &[String], opts: &ReadOptions<'_>) -> Result<Vec<Option<usize>>, EtlError> {
    opts.schema
        .iter()
        .map(|f| {
            let idx = names.iter().position(|n| n == &f.name);
            if idx.is_none() && f.required {
                return Err(InputError::new(
                    opts.name,
                    format!(
                        "required column '{}' is missing from the header (found: {})",
                        f.name,
                        names.join(", ")
                    ),
                )
                .at_line(1)
                .in_field(&f.name)
                .into());
            }
            Ok(idx)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// JSON

/// A JSON object seen through the schema. Nested objects are reached by `parent.child`
/// column names, as json_normalize flattens them.
struct JsonRecord<'a> {
    object: &'a serde_json::Map<String, Value>,
    paths: &'a [Vec<String>],
    names: &'a [String],
    raw: &'a [u8],
}

impl Record for JsonRecord<'_> {
    fn field(&self, col: usize) -> Result<Field<'_>, String> {
        // An exact key wins over a nested path ("a.b" as a key).
        if let Some(v) = self.object.get(&self.names[col]) {
            return Ok(field_of(v));
        }
        let path = &self.paths[col];
        if path.len() < 2 {
            return Ok(Field::Absent);
        }
        let mut current = self.object;
        for (depth, key) in path.iter().enumerate() {
            match current.get(key) {
                Some(Value::Object(inner)) if depth + 1 < path.len() => current = inner,
                Some(v) if depth + 1 == path.len() => return Ok(field_of(v)),
                _ => return Ok(Field::Absent),
            }
        }
        Ok(Field::Absent)
    }

    fn raw(&self) -> &[u8] {
        self.raw
    }
}

fn field_of(v: &Value) -> Field<'_> {
    match v {
        Value::Null => Field::Absent,
        Value::String(s) => Field::Text(s),
        other => Field::Json(other),
    }
}

/// Tracks which keys the objects hold, for the manifest and `extra_columns: fail`.
struct KeyTracker<'a> {
    schema: &'a [FieldSpec],
    found: Vec<String>,
    seen: HashSet<String>,
    /// Column names and their parent paths: keys on the way to a schema column.
    known_prefixes: HashSet<String>,
}

impl<'a> KeyTracker<'a> {
    fn new(schema: &'a [FieldSpec]) -> Self {
        let mut known_prefixes = HashSet::new();
        for f in schema {
            let mut prefix = String::new();
            for part in f.name.split('.') {
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(part);
                known_prefixes.insert(prefix.clone());
            }
        }
        Self {
            schema,
            found: Vec::new(),
            seen: HashSet::new(),
            known_prefixes,
        }
    }

    fn observe(&mut self, object: &serde_json::Map<String, Value>, prefix: &str) {
        for (k, v) in object {
            if self.found.len() >= MAX_REPORTED_EXTRA {
                return;
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                // Descend only where the schema does not take the object whole.
                Value::Object(inner) if !self.schema.iter().any(|f| f.name == path) => {
                    self.observe(inner, &path);
                }
                _ => {
                    if !self.seen.contains(&path) {
                        self.seen.insert(path.clone());
                        self.found.push(path);
                    }
                }
            }
        }
    }

    fn columns(self) -> InputColumns {
        let dropped = self
            .found
            .iter()
            .filter(|p| !self.known_prefixes.contains(*p))
            .cloned()
            .collect();
        InputColumns {
            found: self.found,
            dropped,
        }
    }
}

pub(crate) struct JsonShape {
    paths: Vec<Vec<String>>,
    names: Vec<String>,
}

impl JsonShape {
    fn new(schema: &[FieldSpec]) -> Self {
        Self {
            paths: schema
                .iter()
                .map(|f| f.name.split('.').map(String::from).collect())
                .collect(),
            names: schema.iter().map(|f| f.name.clone()).collect(),
        }
    }
}

/// Hands one parsed JSON value to the visitor: objects become records, anything else is
/// malformed.
fn visit_json_value(
    value: &Value,
    line: u64,
    shape: &JsonShape,
    keys: &mut KeyTracker<'_>,
    visitor: &mut dyn RecordVisitor,
    raw: &[u8],
) -> Result<(), EtlError> {
    match value {
        Value::Object(object) => {
            keys.observe(object, "");
            visitor.record(
                line,
                &JsonRecord {
                    object,
                    paths: &shape.paths,
                    names: &shape.names,
                    raw,
                },
            )
        }
        other => visitor.malformed(
            line,
            &String::from_utf8_lossy(raw),
            format!("expected a JSON object, found {}", json_kind(other)),
        ),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_extra(keys: KeyTracker<'_>, opts: &ReadOptions<'_>) -> Result<InputColumns, EtlError> {
    let columns = keys.columns();
    if opts.extra_columns == ExtraColumns::Fail && !columns.dropped.is_empty() {
        return Err(InputError::new(
            opts.name,
            format!("keys not in the schema: {}", columns.dropped.join(", ")),
        )
        .into());
    }
    Ok(columns)
}

/// One JSON object per line. A line that is not valid JSON is malformed, and reading goes
/// on: one bad line must not lose the rest of the file.
pub(crate) fn read_ndjson(
    input: &mut dyn BufRead,
    opts: &ReadOptions<'_>,
    visitor: &mut dyn RecordVisitor,
) -> Result<InputColumns, EtlError> {
    skip_bom(input, opts.name)?;
    let shape = JsonShape::new(opts.schema);
    visitor.layout(Layout::Json(JsonShape::new(opts.schema)));
    let mut keys = KeyTracker::new(opts.schema);
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| EtlError::io(format!("reading {}", opts.name), e))?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = trim_ascii(&buf);
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(text) {
            Ok(value) => visit_json_value(&value, line, &shape, &mut keys, visitor, text)?,
            Err(e) => visitor.malformed(
                line,
                &String::from_utf8_lossy(text),
                format!(
                    "invalid JSON at column {}: {}",
                    e.column(),
                    json_message(&e)
                ),
            )?,
        }
    }
    check_extra(keys, opts)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A JSON array of objects (streamed element by element), a single object, or objects
/// one after another. A syntax error here stops the file: past it, element boundaries
/// cannot be trusted.
pub(crate) fn read_json(
    input: &mut dyn BufRead,
    opts: &ReadOptions<'_>,
    visitor: &mut dyn RecordVisitor,
) -> Result<InputColumns, EtlError> {
    skip_bom(input, opts.name)?;
    let shape = JsonShape::new(opts.schema);
    visitor.layout(Layout::Json(JsonShape::new(opts.schema)));
    let mut keys = KeyTracker::new(opts.schema);
    let mut splitter = JsonSplitter::new(input, opts.name);
    while let Some((line, bytes)) = splitter.next_value()? {
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            InputError::new(opts.name, format!("invalid JSON: {}", json_message(&e)))
                .at_line(line + e.line() as u64 - 1)
        })?;
        visit_json_value(&value, line, &shape, &mut keys, visitor, &bytes)?;
    }
    check_extra(keys, opts)
}

/// Cuts a JSON text into top-level values, or into the elements of a top-level array,
/// without parsing them: it only tracks strings and nesting depth.
pub(crate) struct JsonSplitter<'a> {
    input: &'a mut dyn BufRead,
    name: &'a str,
    line: u64,
    /// Inside a top-level array: values are its elements.
    in_array: bool,
    array_done: bool,
    /// A value has been read: a '[' now is a value, not the top-level array.
    started_elements: bool,
}

impl<'a> JsonSplitter<'a> {
    pub(crate) fn new(input: &'a mut dyn BufRead, name: &'a str) -> Self {
        Self {
            input,
            name,
            line: 1,
            in_array: false,
            array_done: false,
            started_elements: false,
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, EtlError> {
        let buf = self
            .input
            .fill_buf()
            .map_err(|e| EtlError::io(format!("reading {}", self.name), e))?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>, EtlError> {
        let b = self.peek()?;
        if let Some(c) = b {
            self.input.consume(1);
            if c == b'\n' {
                self.line += 1;
            }
        }
        Ok(b)
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, EtlError> {
        while let Some(c) = self.peek()? {
            if c.is_ascii_whitespace() {
                self.bump()?;
            } else {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn syntax(&self, msg: &str) -> EtlError {
        InputError::new(self.name, format!("invalid JSON: {msg}"))
            .at_line(self.line)
            .into()
    }

    /// The next value and the line it starts on.
    pub(crate) fn next_value(&mut self) -> Result<Option<(u64, Vec<u8>)>, EtlError> {
        if self.array_done {
            if self.skip_ws()?.is_some() {
                return Err(self.syntax("data after the closing ']' of the top-level array"));
            }
            return Ok(None);
        }
        let Some(c) = self.skip_ws()? else {
            return if self.in_array {
                Err(self.syntax("the top-level array is not closed"))
            } else {
                Ok(None)
            };
        };
        if !self.in_array && c == b'[' && !self.started_elements {
            self.in_array = true;
            self.bump()?;
            match self.skip_ws()? {
                Some(b']') => {
                    self.bump()?;
                    self.array_done = true;
                    return self.next_value();
                }
                Some(_) => {}
                None => return Err(self.syntax("the top-level array is not closed")),
            }
        } else if self.in_array {
            match c {
                b',' => {
                    self.bump()?;
                    if self.skip_ws()?.is_none() {
                        return Err(self.syntax("the top-level array is not closed"));
                    }
                }
                b']' => {
                    self.bump()?;
                    self.array_done = true;
                    return self.next_value();
                }
                _ if self.started_elements => {
                    return Err(self.syntax("expected ',' or ']' between array elements"));
                }
                _ => {}
            }
        }
        let start_line = self.line;
        let value = self.take_value()?;
        self.started_elements = true;
        Ok(Some((start_line, value)))
    }

    /// Reads one value's bytes: a string, an object/array by depth, or a scalar up to the
    /// next delimiter.
    fn take_value(&mut self) -> Result<Vec<u8>, EtlError> {
        let mut out = Vec::with_capacity(256);
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek()? else {
                if in_string || depth > 0 {
                    return Err(self.syntax("the file ends inside a value"));
                }
                return Ok(out);
            };
            if in_string {
                self.bump()?;
                out.push(c);
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return Ok(out),
                b'}' | b']' => {
                    depth -= 1;
                    self.bump()?;
                    out.push(c);
                    if depth == 0 {
                        return Ok(out);
                    }
                    continue;
                }
                b',' if depth == 0 => return Ok(out),
                c if c.is_ascii_whitespace() && depth == 0 => return Ok(out),
                _ => {}
            }
            self.bump()?;
            out.push(c);
        }
    }
}

/// How an input's records split into schema fields: kept so that the few records a step
/// or rule rejects can be split again, by the readers' own logic, into the text they held.
pub(crate) enum Layout {
    Csv {
        delimiter: u8,
        /// schema column -> field index, from the header
        map: Vec<Option<usize>>,
        names: Vec<String>,
    },
    Json(JsonShape),
}

impl Layout {
    /// The schema's column names.
    pub(crate) fn names(&self) -> &[String] {
        match self {
            Self::Csv { names, .. } => names,
            Self::Json(shape) => &shape.names,
        }
    }

    /// Hands `each` every schema field of each record in turn, as [`field_text`] would
    /// give it; a record that no longer splits (it always did once) gives nulls.
    pub(crate) fn split_each(&self, records: &[&[u8]], mut each: impl FnMut(usize, Option<&str>)) {
        let width = self.names().len();
        let mut fields = |record: Option<&dyn Record>| {
            for i in 0..width {
                match record.map(|r| r.field(i)) {
                    Some(Ok(Field::Text(t))) => each(i, Some(t)),
                    Some(Ok(Field::Json(v))) => each(i, Some(&v.to_string())),
                    _ => each(i, None),
                }
            }
        };
        match self {
            Self::Csv { delimiter, map, .. } => {
                // One reader over the records back to back (each is a whole CSV record):
                // building a reader costs as much as splitting a few hundred records.
                let mut joined = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
                for r in records {
                    joined.extend_from_slice(r);
                    joined.push(b'\n');
                }
                let mut reader = csv_reader(*delimiter, joined.as_slice());
                let mut record = csv::ByteRecord::new();
                for _ in records {
                    match reader.read_byte_record(&mut record) {
                        Ok(true) => fields(Some(&CsvRecord {
                            record: &record,
                            text: std::str::from_utf8(record.as_slice()).ok(),
                            map,
                            raw: &[],
                        })),
                        _ => fields(None),
                    }
                }
            }
            Self::Json(shape) => {
                for raw in records {
                    match serde_json::from_slice::<Value>(raw) {
                        Ok(Value::Object(object)) => fields(Some(&JsonRecord {
                            object: &object,
                            paths: &shape.paths,
                            names: &shape.names,
                            raw,
                        })),
                        _ => fields(None),
                    }
                }
            }
        }
    }
}
