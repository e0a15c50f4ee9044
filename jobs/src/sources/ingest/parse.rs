//! Reading build-step records from NDJSON, a JSON array or CSV, one record at a time from any
//! `Read`, so an upload is never held in memory whole.
use super::record::{
    syntax_error, validate, Field, RawRecord, RecordError, StepRecord, FIELDS, REQUIRED,
};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

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
pub fn parse<R: Read>(
    format: Format,
    reader: R,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    match format {
        Format::Ndjson => ndjson(reader, each),
        Format::Json => json_array(reader, each),
        Format::Csv => csv(reader, each),
    }
}

fn ndjson<R: Read>(
    reader: R,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::with_capacity(1024);
    let (mut line, mut record) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
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
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        record += 1;
        let item = match serde_json::from_slice::<RawRecord>(&buf) {
            Ok(raw) => validate(raw, line, record),
            Err(e) => Err(vec![syntax_error(
                line,
                record,
                format!("not a JSON object: {e}"),
            )]),
        };
        if each(item).is_break() {
            return Ok(());
        }
    }
}

/// Counts the lines a reader has handed out, so JSON records can be located.
struct LineCounter<R> {
    inner: R,
    lines: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let newlines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        self.lines.set(self.lines.get() + newlines);
        Ok(n)
    }
}

struct ArrayVisitor<'a> {
    each: &'a mut dyn FnMut(Item) -> ControlFlow<()>,
    lines: std::rc::Rc<std::cell::Cell<u64>>,
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
            let line = self.lines.get() + 1;
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
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let lines = std::rc::Rc::new(std::cell::Cell::new(0));
    // serde_json reads byte by byte; the BufReader under the counter keeps that cheap, and the
    // counter sees exactly the bytes consumed so far.
    let counted = LineCounter {
        inner: BufReader::with_capacity(256 * 1024, reader),
        lines: lines.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(counted);
    let visitor = ArrayVisitor {
        each,
        lines: lines.clone(),
    };
    match de.deserialize_seq(visitor).and_then(|_| de.end()) {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().starts_with(STOPPED) => Ok(()),
        Err(e) => Err(syntax_error(
            e.line() as u64,
            0,
            format!("invalid JSON array: {e}"),
        )),
    }
}

fn csv<R: Read>(
    reader: R,
    each: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> Result<(), RecordError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| syntax_error(1, 0, format!("cannot read the CSV header: {e}")))?
        .clone();
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
                let item = if row.len() != headers.len() {
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
        let res = parse(format, text.as_bytes(), &mut |item| {
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
