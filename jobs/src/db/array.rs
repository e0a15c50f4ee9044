//! PostgreSQL arrays sent as one text parameter per column: a statement then has as many
//! parameters as columns whatever its number of rows, and `unnest($n::text::T[])` turns each
//! back into rows (the ingest's upsert of build steps, the stored months' jobs).
use sea_orm::Value;
use std::fmt::Write as _;

/// A PostgreSQL array literal built one element at a time: `{"a","b\"c",NULL}`, `{1,NULL}`.
pub(crate) struct ArrayLiteral(String);

impl ArrayLiteral {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut s = String::with_capacity(bytes);
        s.push('{');
        ArrayLiteral(s)
    }

    fn separate(&mut self) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
    }

    pub(crate) fn text(&mut self, value: Option<&str>) {
        self.separate();
        let Some(value) = value else {
            self.0.push_str("NULL");
            return;
        };
        self.0.push('"');
        if value.contains(['"', '\\']) {
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    self.0.push('\\');
                }
                self.0.push(c);
            }
        } else {
            self.0.push_str(value);
        }
        self.0.push('"');
    }

    pub(crate) fn int(&mut self, value: Option<i64>) {
        self.separate();
        match value {
            Some(i) => {
                let _ = write!(self.0, "{i}");
            }
            None => self.0.push_str("NULL"),
        }
    }

    pub(crate) fn finish(mut self) -> Value {
        self.0.push('}');
        Value::String(Some(self.0))
    }
}
