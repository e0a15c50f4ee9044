//! Reading build-step records from NDJSON, a JSON array or CSV, one record at a time from any
//! `Read`, so an upload is never held in memory whole.
use super::record::{
    syntax_error, validate, Field, RawRecord, RecordError, StepRecord, FIELDS, REQUIRED,
};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line (`application/x-ndjson`).
    Ndjson,
    /// A JSON array of objects (`application/json`).
    Json,
    /// CSV with a header row (`text/csv`).
    Csv,
}

impl Format {
    /// The format of an HTTP content type (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines" => Some(Format::Ndjson),
            "application/json" => Some(Format::Json),
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The format of a file by its name: `.csv`, `.json`, else NDJSON.
    pub fn from_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Format::Csv
        } else if lower.ends_with(".json") {
            Format::Json
        } else {
            Format::Ndjson
        }
    }
}

/// What the parser hands on for each record: the record, or what is wrong with it.
pub type Item = Result<StepRecord, Vec<RecordError>>;

/// Parses `reader` in `format`, calling `each(item)` per record in input order. A syntax error
/// that makes the rest unreadable (a broken JSON array, a CSV without the required columns, an
/// I/O error) ends the parse and is returned; errors confined to one record are items.
///
/// No record may be longer than `max_record` bytes, and no more than about that much of one is
/// ever held: a longer NDJSON line is an error item and the parse goes on at the next line; a
/// longer JSON array element or CSV row ends the parse (there is no telling where the next one
/// starts), a CSV row that only just exceeds it is an error item.
pub fn parse<R: Read>(
    format: Format,
    reader: R,
    max_record: usize,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    match format {
        Format::Ndjson => ndjson(reader, max_record, each),
        Format::Json => json_array(reader, max_record, each),
        Format::Csv => csv(reader, max_record, each),
    }
}

fn too_long(max_record: usize) -> String {
    format!("the record is longer than {max_record} bytes (server.max_record_bytes)")
}

/// Reads one line (with its `\n`) into `buf` as long as it has at most `max` bytes before its
/// line end; of a longer line nothing more is kept, the rest is only skipped. Returns the bytes
/// consumed (0 at the end of the input) and whether the line was too long.
fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut over) = (0, false);
    loop {
        let (used, done) = {
            let available = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            // Room for the line end ("\r\n") on top of `max`.
            if !over && buf.len() + chunk.len() > max + 2 {
                over = true;
                buf.clear();
                buf.shrink_to(1024);
            }
            if !over {
                buf.extend_from_slice(chunk);
            }
            (chunk.len(), done)
        };
        reader.consume(used);
        consumed += used;
        if done {
            break;
        }
    }
    let content = buf
        .strip_suffix(b"\n")
        .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
        .unwrap_or(buf);
    Ok((consumed, over || content.len() > max))
}

fn ndjson<R: Read>(
    reader: R,
    max_record: usize,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::with_capacity(1024);
    let (mut line, mut record) = (0u64, 0u64);
    loop {
        buf.clear();
        let (n, over) = read_line_bounded(&mut reader, &mut buf, max_record).map_err(|e| {
            syntax_error(
                line + 1,
                record + 1,
                format!("reading the input failed: {e}"),
            )
        })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if !over && buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        record += 1;
        let item = if over {
            Err(vec![syntax_error(line, record, too_long(max_record))])
        } else {
            match serde_json::from_slice::<RawRecord>(&buf) {
                Ok(raw) => validate(raw, line, record),
                Err(e) => Err(vec![syntax_error(
                    line,
                    record,
                    format!("not a JSON object: {e}"),
                )]),
            }
        };
        if each(item).is_break() {
            return Ok(());
        }
    }
}

/// What a [`Counter`] has handed out: lines, and bytes since the current record began.
#[derive(Default)]
struct Consumed {
    lines: Cell<u64>,
    bytes: Cell<u64>,
    record_start: Cell<u64>,
    /// The reader refused to go on: the current record is over the limit.
    over: Cell<bool>,
}

/// Counts what a reader has handed out, so records can be located, and refuses to hand out
/// more than `limit` bytes of one record (JSON arrays and CSV: their parsers would keep it all).
struct Counter<R> {
    inner: R,
    consumed: Rc<Consumed>,
    limit: u64,
}

impl<R: Read> Read for Counter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let c = &self.consumed;
        if c.bytes.get() - c.record_start.get() > self.limit {
            c.over.set(true);
            return Err(std::io::Error::other("record over the size limit"));
        }
        let n = self.inner.read(buf)?;
        let newlines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        c.lines.set(c.lines.get() + newlines);
        c.bytes.set(c.bytes.get() + n as u64);
        Ok(n)
    }
}

struct ArrayVisitor<'a> {
    each: &'a mut dyn FnMut(Item) -> ControlFlow<()>,
    consumed: Rc<Consumed>,
    records: Rc<Cell<u64>>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of build-step objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut record = 0u64;
        while let Some(raw) = seq.next_element::<RawRecord>()? {
            record += 1;
            self.records.set(record);
            let c = &self.consumed;
            c.record_start.set(c.bytes.get());
            let line = c.lines.get() + 1;
            if (self.each)(validate(raw, line, record)).is_break() {
                // Stop reading; the caller ends the parse.
                return Err(serde::de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }
}

const STOPPED: &str = "\u{0}stopped";

fn json_array<R: Read>(
    reader: R,
    max_record: usize,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let consumed = Rc::new(Consumed::default());
    let records = Rc::new(Cell::new(0));
    // serde_json reads byte by byte; the BufReader under the counter keeps that cheap, and the
    // counter sees exactly the bytes consumed so far. The limit counts a record with the
    // separator before it.
    let counted = Counter {
        inner: BufReader::with_capacity(256 * 1024, reader),
        consumed: consumed.clone(),
        limit: max_record as u64 + 16,
    };
    let mut de = serde_json::Deserializer::from_reader(counted);
    let visitor = ArrayVisitor {
        each,
        consumed: consumed.clone(),
        records: records.clone(),
    };
    match de.deserialize_seq(visitor).and_then(|_| de.end()) {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().starts_with(STOPPED) => Ok(()),
        Err(_) if consumed.over.get() => Err(syntax_error(
            consumed.lines.get() + 1,
            records.get() + 1,
            too_long(max_record),
        )),
        Err(e) => Err(syntax_error(
            e.line() as u64,
            0,
            format!("invalid JSON array: {e}"),
        )),
    }
}

/// The CSV reader's own buffer: it reads this far ahead of the record it parses.
const CSV_BUFFER: usize = 8 * 1024;

fn csv<R: Read>(
    reader: R,
    max_record: usize,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let consumed = Rc::new(Consumed::default());
    let counted = Counter {
        inner: reader,
        consumed: consumed.clone(),
        limit: (max_record + CSV_BUFFER) as u64,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(counted);
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(_) if consumed.over.get() => return Err(syntax_error(1, 0, too_long(max_record))),
        Err(e) => {
            return Err(syntax_error(
                1,
                0,
                format!("cannot read the CSV header: {e}"),
            ))
        }
    };
    consumed.record_start.set(rdr.position().byte());
    let columns: Vec<Option<&'static str>> = headers
        .iter()
        .map(|h| FIELDS.iter().copied().find(|f| f.eq_ignore_ascii_case(h)))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !columns.contains(&Some(*r)))
        .collect();
    if !missing.is_empty() {
        return Err(syntax_error(
            1,
            0,
            format!("the CSV header lacks the column(s) {}", missing.join(", ")),
        ));
    }
    let mut row = csv::StringRecord::new();
    let mut record = 0u64;
    loop {
        match rdr.read_record(&mut row) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                record += 1;
                let line = row.position().map(|p| p.line()).unwrap_or(0);
                let start = consumed.record_start.replace(rdr.position().byte());
                let length = rdr.position().byte() - start;
                let item = if length > max_record as u64 + 2 {
                    Err(vec![syntax_error(line, record, too_long(max_record))])
                } else if row.len() != headers.len() {
                    Err(vec![syntax_error(
                        line,
                        record,
                        format!("has {} fields; the header has {}", row.len(), headers.len()),
                    )])
                } else {
                    let mut raw = RawRecord::default();
                    for (value, column) in row.iter().zip(&columns) {
                        if let (Some(name), false) = (column, value.is_empty()) {
                            raw.set(name, Field::Str(value.to_string()));
                        }
                    }
                    validate(raw, line, record)
                };
                if each(item).is_break() {
                    return Ok(());
                }
            }
            Err(_) if consumed.over.get() => {
                let line = rdr.position().line();
                return Err(syntax_error(line, record + 1, too_long(max_record)));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(syntax_error(line, record + 1, format!("invalid CSV: {e}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(format: Format, text: &str) -> (Vec<Item>, Result<(), RecordError>) {
        let mut items = Vec::new();
        let res = parse(format, text.as_bytes(), 64 << 10, &mut |item| {
            items.push(item);
            ControlFlow::Continue(())
        });
        (items, res)
    }

    const A: &str = r#"{"build":1,"step":1,"project":"nixpkgs","jobset":"cuda","machine":"build03","start":1761955200,"stop":1761958800}"#;
    const B: &str = r#"{"build":1,"step":2,"project":"nixpkgs","jobset":"cuda","machine":"build03","start":"2025-11-01T01:00:00Z","stop":"2025-11-01T02:00:00Z","status":1}"#;

    #[test]
    fn ndjson_counts_lines_and_skips_blank_ones() {
        let text = format!("{A}\n\n{B}\nnot json\n");
        let (items, res) = collect(Format::Ndjson, &text);
        res.unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        let err = &items[2].as_ref().unwrap_err()[0];
        assert_eq!((err.line, err.record), (4, 3));
        assert!(err.message.starts_with("not a JSON object"));
    }

    #[test]
    fn json_arrays_stream_and_locate_records() {
        let text = format!("[\n  {A},\n  {},\n  {B}\n]\n", r#"{"build":2}"#);
        let (items, res) = collect(Format::Json, &text);
        res.unwrap();
        assert_eq!(items.len(), 3);
        let errs = items[1].as_ref().unwrap_err();
        assert_eq!((errs[0].line, errs[0].record), (3, 2));
        assert_eq!(items[2].as_ref().unwrap().status, Some(1));

        let (_, broken) = collect(Format::Json, "[{\"build\": 1},");
        assert!(broken
            .unwrap_err()
            .message
            .starts_with("invalid JSON array"));
    }

    #[test]
    fn csv_maps_columns_by_header() {
        let text = "build,step,project,jobset,job,machine,start,stop,status\n\
                    1,1,nixpkgs,cuda,,build03,1761955200,1761958800,0\n\
                    1,2,nixpkgs,cuda,\"a,b\",build03,2025-11-01T01:00:00Z,2025-11-01T02:00:00Z,\n\
                    1,3,nixpkgs\n";
        let (items, res) = collect(Format::Csv, text);
        res.unwrap();
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().unwrap();
        assert_eq!((first.job.as_deref(), first.status), (None, Some(0)));
        assert_eq!(items[1].as_ref().unwrap().job.as_deref(), Some("a,b"));
        let err = &items[2].as_ref().unwrap_err()[0];
        assert_eq!(err.line, 4);
        assert!(err.message.contains("has 3 fields"));

        let (_, res) = collect(Format::Csv, "build,step\n1,1\n");
        assert!(res
            .unwrap_err()
            .message
            .contains("lacks the column(s) project, jobset, machine, start, stop"));
    }

    /// A prefix, then `x` for ever: a record that never ends.
    fn endless(prefix: &str) -> impl Read + '_ {
        prefix.as_bytes().chain(std::io::repeat(b'x'))
    }

    fn parse_limited<R: Read>(
        format: Format,
        r: R,
        max: usize,
    ) -> (Vec<Item>, Result<(), RecordError>) {
        let mut items = Vec::new();
        let res = parse(format, r, max, &mut |item| {
            items.push(item);
            ControlFlow::Continue(())
        });
        (items, res)
    }

    #[test]
    fn records_over_the_limit_are_refused_without_keeping_them() {
        // NDJSON: the long line is an error item; the parse goes on after it.
        let long = format!(r#"{{"build":"{}"}}"#, "9".repeat(5000));
        let text = format!("{A}\n{long}\n{B}\r\n");
        let (items, res) = parse_limited(Format::Ndjson, text.as_bytes(), 1024);
        res.unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[2].is_ok());
        let err = &items[1].as_ref().unwrap_err()[0];
        assert_eq!((err.line, err.record), (2, 2));
        assert!(err.message.contains("longer than 1024 bytes"), "{err:?}");
        // A line of exactly the limit passes, with either line end.
        let (items, _) = parse_limited(Format::Ndjson, format!("{A}\r\n{A}").as_bytes(), A.len());
        assert!(items.iter().all(Result::is_ok) && items.len() == 2);

        // A JSON array element or a CSV row that never ends stops the parse after the limit.
        let (items, res) =
            parse_limited(Format::Json, endless(&format!("[{A},\n{{\"job\":\"")), 1024);
        assert_eq!(items.len(), 1);
        let err = res.unwrap_err();
        assert_eq!((err.line, err.record), (2, 2));
        assert!(err.message.contains("longer than 1024 bytes"), "{err:?}");
        let (items, res) = parse_limited(
            Format::Csv,
            endless(
                "build,step,project,jobset,machine,start,stop\n1,1,p,j,m,1761955200,1761955300\n2,",
            ),
            1024,
        );
        assert_eq!(items.len(), 1);
        assert!(res.unwrap_err().message.contains("longer than 1024 bytes"));
        let (_, res) = parse_limited(Format::Csv, endless("build,"), 1024);
        assert!(res.unwrap_err().message.contains("longer than 1024 bytes"));
        // A CSV row just over the limit is an error item.
        let text = format!(
            "build,step,project,jobset,machine,start,stop,job\n1,1,p,j,m,1761955200,1761955300,{}\n",
            "x".repeat(1100)
        );
        let (items, res) = parse_limited(Format::Csv, text.as_bytes(), 1024);
        res.unwrap();
        assert!(items[0].as_ref().unwrap_err()[0]
            .message
            .contains("longer than"));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type("application/x-ndjson"),
            Some(Format::Ndjson)
        );
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::from_content_type("text/csv"), Some(Format::Csv));
        assert_eq!(Format::from_content_type("text/plain"), None);
    }
}
