//! Property tests over what outsiders write: the build-step parser (NDJSON, JSON array, CSV) and
//! the configuration loader must answer every input with records or errors, never a panic.
//! A fixed case count keeps the run bounded in CI.
use buildfund_jobs::sources::ingest::parse::{parse, Format};
use buildfund_jobs::Config;
use proptest::prelude::*;
use std::ops::ControlFlow;

const GOOD_LINE: &str = r#"{"build":1,"step":2,"project":"nixpkgs","jobset":"cuda","job":"a.b","system":"x86_64-linux","machine":"build03","start":1761955200,"stop":"2025-11-01T01:00:00Z","status":0}"#;
const GOOD_CSV: &str = "build,step,project,jobset,job,machine,start,stop,status\n1,1,nixpkgs,cuda,,build03,1761955200,1761958800,0\n";
const GOOD_CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"
[server]
max_record_bytes = 4096
[[funds]]
slug = "general"
default = true
opening_balance = "100.00"
[[pools]]
slug = "cuda"
fund = "general"
jobsets = ["nixpkgs:cuda*"]
[[machines]]
name = "build03"
monthly = "120.00"
"#;

/// Parses `input` and checks what comes out: every record and error is located sensibly.
fn parse_all(format: Format, input: &[u8], max_record: usize) {
    let mut n = 0u64;
    let _ = parse(format, input, max_record, &mut |item| {
        n += 1;
        if let Err(errors) = &item {
            assert!(!errors.is_empty());
            for e in errors {
                // Echoed values are cut short: no message repeats a long input whole.
                assert!(e.message.len() < 1024, "{}", e.message.len());
            }
        }
        ControlFlow::Continue(())
    });
}

/// `base` with bytes replaced, inserted or removed at the given places.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, byte, how) in edits {
        let at = if out.is_empty() {
            0
        } else {
            at % (out.len() + 1)
        };
        match how % 3 {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            _ if at < out.len() => {
                out.remove(at);
            }
            _ => out.push(byte),
        }
    }
    out
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'"'),
        Just(b'\\'),
        Just(b','),
        Just(b'\n'),
        Just(b'\r'),
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b']'),
        Just(b':'),
        Just(b'-'),
        Just(b'9'),
        Just(0u8),
        Just(0xff),
        any::<u8>(),
    ]
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), interesting_byte(), any::<u8>()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_parser_never_panics_on_bytes(input in prop::collection::vec(interesting_byte(), 0..600),
                                        max in 16usize..2048) {
        for format in [Format::Ndjson, Format::Json, Format::Csv] {
            parse_all(format, &input, max);
        }
    }

    #[test]
    fn the_parser_never_panics_on_damaged_records(edits in edits(), copies in 1usize..4,
                                                  max in 64usize..1024) {
        let ndjson = format!("{GOOD_LINE}\n").repeat(copies);
        parse_all(Format::Ndjson, &mutate(ndjson.as_bytes(), &edits), max);
        let array = format!("[{}]", vec![GOOD_LINE; copies].join(",\n"));
        parse_all(Format::Json, &mutate(array.as_bytes(), &edits), max);
        parse_all(Format::Csv, &mutate(GOOD_CSV.as_bytes(), &edits), max);
    }

    #[test]
    fn fields_of_any_value_are_validated_without_panic(
        field in prop::sample::select(vec!["build", "step", "project", "jobset", "job", "system",
                                           "machine", "start", "stop", "status", "source"]),
        value in prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| if f.is_finite() { f.to_string() } else { "1e400".into() }),
            "\\PC{0,300}".prop_map(|s| serde_json::Value::String(s).to_string()),
            Just("-9223372036854775808".to_string()),
            Just("18446744073709551616".to_string()),
            Just("[1,{\"a\":[]}]".to_string()),
            Just("null".to_string()),
        ],
    ) {
        let mut record: serde_json::Value = serde_json::from_str(GOOD_LINE).unwrap();
        record[field] = serde_json::from_str(&value).unwrap_or(serde_json::Value::Null);
        let line = record.to_string();
        parse_all(Format::Ndjson, line.as_bytes(), 1 << 16);
        parse_all(Format::Json, format!("[{line}]").as_bytes(), 1 << 16);
    }

    #[test]
    fn the_config_loader_never_panics(edits in edits(), text in "\\PC{0,200}") {
        let damaged = mutate(GOOD_CONFIG.as_bytes(), &edits);
        let _ = Config::parse(&String::from_utf8_lossy(&damaged), "fuzz");
        let _ = Config::parse(&text, "fuzz");
    }

    #[test]
    fn config_values_of_any_shape_are_checked_without_panic(
        key in prop::sample::select(vec![
            "currency", "ledger_start", "idle", "public_url", "server.listen",
            "server.max_body_bytes", "server.max_record_bytes", "server.body_idle_timeout_seconds",
            "funds.0.opening_balance", "funds.0.reserve", "funds.0.monthly_goal",
            "pools.0.jobsets", "pools.0.warn_at", "pools.0.monthly_budget",
            "machines.0.monthly", "machines.0.slots", "machines.0.active_from",
        ]),
        value in prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            Just("9223372036854775807".to_string()),
            Just("\"92233720368547758.07\"".to_string()),
            Just("\"-1\"".to_string()),
            Just("1e308".to_string()),
            Just("[\"[\", \"**/{\"]".to_string()),
            Just("{ a = 1 }".to_string()),
            "\\PC{0,40}".prop_map(|s| toml_string(&s)),
        ],
    ) {
        let mut text = GOOD_CONFIG.to_string();
        let (section, name) = match key.split('.').collect::<Vec<_>>()[..] {
            [name] => (None, name.to_string()),
            [table, name] => (Some(format!("[{table}]")), name.to_string()),
            [array, _, name] => (Some(format!("[[{array}]]")), name.to_string()),
            _ => unreachable!(),
        };
        // Put the value under its table: replace the key if there, else add it.
        let line = format!("{name} = {value}");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let start = match &section {
            None => 0,
            Some(s) => lines.iter().position(|l| l == s).map(|i| i + 1).unwrap_or(lines.len()),
        };
        let end = lines[start..]
            .iter()
            .position(|l| l.starts_with('['))
            .map(|i| i + start)
            .unwrap_or(lines.len());
        match lines[start..end].iter().position(|l| l.starts_with(&format!("{name} ="))) {
            Some(i) => lines[start + i] = line,
            None => lines.insert(start, line),
        }
        text = lines.join("\n");
        let _ = Config::parse(&text, "fuzz");
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
